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
    const failed = await this.writesFailed(transaction, message, result);
    if (failed) return failed;
    await begun;
    return (await this.swallowedFailure(client, transaction, message)) ?? result;
  }

  /**
   * Runs one message inside the savepoint that is set on entry, and leaves a fresh one. With
   * `deferred` savepoints, the savepoint statements leave with the next statement (see
   * BatchProcessor.run); otherwise BEGIN_BATCH set the first, and each message sends RELEASE
   * and SAVEPOINT in one round trip of their own, whose failure shows a failure the handler
   * swallowed.
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
      const failure =
        (await this.writesFailed(transaction, message, result)) ??
        (await this.keepWrites(client, transaction, message, deferred));
      if (!failure) return result;
      result = failure;
    }
    await transaction.settled().catch(() => undefined);
    // Undoes the handler's writes; the savepoint stays set and clean.
    await transaction.rollbackToSavepoint();
    if (result.reply !== undefined) {
      await this.writeReply(transaction, message, result.reply);
      await freshSavepoint(transaction, deferred);
    }
    return result;
  }

  /**
   * Waits for the writes of a handler that returned, then writes its reply; returns the failure
   * of either, as the message's.
   */
  private async writesFailed(
    transaction: ActiveTransaction,
    message: ClaimedMessage,
    result: HandleResult,
  ): Promise<HandleResult | undefined> {
    try {
      await transaction.settled();
      if (result.reply !== undefined) await this.writeReply(transaction, message, result.reply);
      return undefined;
    } catch (error) {
      return abortedBy((error as Error).message);
    }
  }

  /**
   * Keeps an isolated message's writes behind a fresh savepoint, or returns the failure that
   * forbids it: the failed RELEASE of an aborted transaction, or, with deferred savepoints, the
   * transaction status.
   */
  private async keepWrites(
    client: pg.PoolClient,
    transaction: ActiveTransaction,
    message: ClaimedMessage,
    deferred: boolean,
  ): Promise<HandleResult | undefined> {
    if (!deferred) {
      return freshSavepoint(transaction, false).then(
        () => undefined,
        (error: Error) => abortedBy(error.message),
      );
    }
    const failure = await this.swallowedFailure(client, transaction, message);
    if (!failure) await freshSavepoint(transaction, true);
    return failure;
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
 * Keeps what was written since the savepoint and sets a fresh one: with the next statement
 * (`deferred`), or now, in a round trip of its own.
 */
async function freshSavepoint(transaction: ActiveTransaction, deferred: boolean): Promise<void> {
  if (deferred) transaction.renewSavepoint();
  else await transaction.control(NEXT_SAVEPOINT);
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
