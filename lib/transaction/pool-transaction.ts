import type pg from 'pg';
import { ActiveTransaction } from './active-transaction.js';
import { targetOfClient } from './client-target.js';

export interface PoolTransactionOptions {
  /**
   * Send BEGIN with the transaction's first statement instead of in a round trip of its own.
   * Needs prepared statements (`preparedStatements`), which some poolers cannot keep.
   */
  readonly deferBegin: boolean;
}

/**
 * A transaction the library opened on a pool connection and will commit itself: the one behind
 * `PostgresTransactionHost.run` and the transactional interceptor. Its BEGIN is deferred (see
 * ActiveTransaction) unless prepared statements are off.
 */
export class PoolTransaction extends ActiveTransaction {
  private finished = false;

  /** A checked-out client whose connection dies emits 'error'; unhandled, it ends the process. */
  private readonly onError = (error: Error) => (this.broken ??= error);
  private broken: Error | undefined;

  private constructor(
    private readonly poolClient: pg.PoolClient,
    deferBegin: boolean,
  ) {
    // With prepared statements, BEGIN leaves with the first statement, and an emit nobody
    // awaited with COMMIT.
    super(poolClient, targetOfClient(poolClient), true, {
      deferBegin,
      foldCommit: deferBegin,
      lateWrites: deferBegin,
    });
    poolClient.on('error', this.onError);
  }

  private release(error?: Error): void {
    this.poolClient.off('error', this.onError);
    this.poolClient.release(error ?? this.broken);
  }

  static async begin(pool: pg.Pool, options: PoolTransactionOptions): Promise<PoolTransaction> {
    const client = await pool.connect();
    if (options.deferBegin) return new PoolTransaction(client, true);
    try {
      await client.query('BEGIN');
    } catch (error) {
      client.release(error as Error);
      throw error;
    }
    return new PoolTransaction(client, false);
  }

  protected override beginFailed(error: Error): void {
    this.broken ??= error;
    super.beginFailed(error);
  }

  /**
   * Waits for writes still in flight, commits (with the last write nobody awaited, in one round
   * trip), then sends the wake-ups.
   */
  async commit(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    let command: string | undefined;
    try {
      this.holdLateWrites();
      await this.settled();
      command = await this.commitWithLateWrites();
    } catch (error) {
      this.rolledBack(error);
      await this.control('ROLLBACK').catch(() => undefined);
      this.release(error as Error);
      throw error;
    }
    this.release();
    this.finishCommit(command);
  }

  /** Rolls back; nothing written inside is kept or announced. */
  async rollback(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    // Writes still queued run first, as they would have had the transaction gone on.
    this.holdLateWrites();
    await this.settled().catch(() => undefined);
    this.flushLateWrites();
    await this.settled().catch(() => undefined);
    this.end();
    let broken: Error | undefined;
    if (this.begun) {
      await this.control('ROLLBACK').catch((error: Error) => (broken = error));
    }
    this.rolledBack();
    this.release(broken);
  }
}
