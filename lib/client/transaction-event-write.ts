import type pg from 'pg';
import type { ActiveTransaction } from '../transaction/active-transaction.js';
import type { WakeupNotifier } from '../wakeup/wakeup-notifier.js';

/**
 * Writes an event's rows inside `transaction` with `statement` (the event's INSERT, built once
 * the client is ready) and resolves with the groups that got a row. The transaction is told
 * about the write at once and waits for it before it commits. The wake-ups go after a commit
 * the library makes, or, in a transaction the library does not commit, by NOTIFY inside it.
 */
export async function writeEventInTransaction(
  transaction: ActiveTransaction,
  statement: Promise<pg.QueryConfig>,
  pattern: string,
  notifier: WakeupNotifier,
): Promise<string[]> {
  const hintsOf = (rows: Array<{ recipient: string }>) =>
    rows.map(({ recipient }) => ({ recipient, pattern }));
  const inserted = transaction.write<{ recipient: string }>(statement, ({ rows }) => {
    // Registered as the result arrives, before a COMMIT sent with the statement is answered.
    if (transaction.ownsCommit) transaction.afterCommit(() => notifier.wake(hintsOf(rows)));
  });
  let written = inserted;
  if (!transaction.ownsCommit) {
    written = inserted.then(async (result) => {
      await notifier.wakeWithin(transaction.client, hintsOf(result.rows));
      return result;
    });
    transaction.track(written);
  }
  const { rows } = await written;
  return rows.map(({ recipient }) => recipient);
}
