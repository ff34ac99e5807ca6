import type pg from 'pg';
import { MESSAGE_SAVEPOINT, type MessageStatements } from '../sql/message.queries.js';
import type { ActiveTransaction } from '../transaction/active-transaction.js';
import { runInTransaction } from '../transaction/ambient-transaction.js';
import { tracksReadyForQuery } from '../transaction/answered.js';
import type { ClaimedMessage, HandleResult } from './claimed-message.js';

export interface MessageRunnerDeps {
  readonly statements: MessageStatements;
  readonly maxAttempts: number;
  /** Runs the handler of one message inside the consume transaction. */
  readonly handle: (
    message: ClaimedMessage,
    transaction: ActiveTransaction,
  ) => Promise<HandleResult>;
}

/** Keeps what the last message wrote and opens a savepoint for the next one. */
const NEXT_SAVEPOINT = `RELEASE SAVEPOINT ${MESSAGE_SAVEPOINT}; SAVEPOINT ${MESSAGE_SAVEPOINT}`;

/**
 * Runs one message of a consume batch inside the batch's transaction: its handler, its reply,
 * and the check that its statements left the transaction usable. Optimistically, with no
 * savepoint, or isolated in its own savepoint (see BatchProcessor).
 */
export class MessageRunner {
  constructor(private readonly deps: MessageRunnerDeps) {}

  /** Runs one message with no savepoint. A result with `rollback` set means: replay the batch. */
  async optimistic(
    client: pg.PoolClient,
    transaction: ActiveTransaction,
    message: ClaimedMessage,
    begun: Promise<unknown>,
  ): Promise<HandleResult> {
    if (message.attempts > this.deps.maxAttempts) return this.diedDuringLastAttempt(message);
    const result = await runInTransaction(transaction, () =>
      this.deps.handle(message, transaction),
    );
    if (result.rollback) {
      await transaction.settled().catch(() => undefined);
      return result;
    }
    try {
      await transaction.settled();
      if (result.reply !== undefined) await this.writeReply(transaction, message, result.reply);
    } catch (error) {
      return abortedBy((error as Error).message);
    }
    await begun;
    return (await this.swallowedFailure(client, transaction, message)) ?? result;
  }

  /**
   * Reads the transaction status once every statement of `message` has answered: 'E' means one
   * failed and the handler carried on regardless, and returns that failure. Throws if the
   * handler ended the transaction.
   */
  private async swallowedFailure(
    client: pg.PoolClient,
    transaction: ActiveTransaction,
    message: ClaimedMessage,
  ): Promise<HandleResult | undefined> {
    // Nothing has been sent in this transaction yet: there is nothing to check.
    if (!transaction.begun) return undefined;
    await transaction.answered();
    const status = client.getTransactionStatus();
    if (status === 'E') return abortedBy('a statement failed and the handler went on');
    if (status !== 'T') {
      throw new Error(
        `the handler of "${message.pattern}" #${message.id} ended the consume transaction ` +
          '(COMMIT or ROLLBACK); handlers must leave it to the transport',
      );
    }
    return undefined;
  }

  /**
   * Runs one message inside the savepoint that is set on entry, and leaves a fresh one. With
   * `deferred` savepoints, the savepoint statements leave with the next statement (see BatchProcessor.run);
   * otherwise BEGIN_BATCH set the first, and each message sends RELEASE and SAVEPOINT in one
   * round trip of their own, whose failure shows a failure the handler swallowed.
   */
  async isolated(
    client: pg.PoolClient,
    transaction: ActiveTransaction,
    message: ClaimedMessage,
    known: HandleResult | undefined,
    deferred: boolean,
  ): Promise<HandleResult> {
    if (message.attempts > this.deps.maxAttempts) return this.diedDuringLastAttempt(message);
    let result =
      known ?? (await runInTransaction(transaction, () => this.deps.handle(message, transaction)));
    if (!result.rollback) {
      try {
        await transaction.settled();
        if (result.reply !== undefined) await this.writeReply(transaction, message, result.reply);
        if (!deferred) {
          await transaction.control(NEXT_SAVEPOINT);
          return result;
        }
      } catch (error) {
        result = abortedBy((error as Error).message);
      }
    }
    if (!result.rollback) {
      const failure = await this.swallowedFailure(client, transaction, message);
      if (!failure) {
        transaction.renewSavepoint();
        return result;
      }
      result = failure;
    }
    await transaction.settled().catch(() => undefined);
    // Undoes the handler's writes; the savepoint stays set and clean.
    await transaction.rollbackToSavepoint();
    if (result.reply !== undefined) {
      await this.writeReply(transaction, message, result.reply);
      if (deferred) transaction.renewSavepoint();
      else await transaction.control(NEXT_SAVEPOINT);
    }
    return result;
  }

  /** Its consumer died during the last allowed attempt (a crash counts as an attempt). */
  private diedDuringLastAttempt(message: ClaimedMessage): HandleResult {
    return {
      outcome: 'dead',
      rollback: false,
      error: `the consumer died during attempt ${message.attempts - 1} of ${this.deps.maxAttempts}`,
    };
  }

  /** Writes a request's reply in the consume transaction. */
  private async writeReply(
    transaction: ActiveTransaction,
    message: ClaimedMessage,
    reply: unknown,
  ): Promise<void> {
    if (!message.reply_to || !message.correlation_id) return;
    await transaction.query(
      this.deps.statements.insertReply([
        message.reply_to,
        message.pattern,
        message.correlation_id,
        JSON.stringify(reply),
        `reply:${message.id}`,
      ]),
    );
  }
}

/**
 * A handler that returned normally, but whose transaction a failed statement aborted: the
 * message fails like a thrown error (a request's reply is dropped with its writes).
 */
function abortedBy(reason: string): HandleResult {
  return { outcome: 'failed', rollback: true, error: `transaction aborted: ${reason}` };
}

/** Whether `client` reports its transaction status, current once every statement answered. */
export function tracksStatus(client: pg.PoolClient): boolean {
  return typeof client.getTransactionStatus === 'function' && tracksReadyForQuery(client);
}
