import type pg from 'pg';
import { TransactionAbortedError } from '../errors/transaction-aborted.error.js';
import { ActiveTransaction } from './active-transaction.js';
import { targetOfClient } from './client-target.js';
import {
  canOpenTransaction,
  PREPARE_AND_BEGIN,
  queryOpeningTransaction,
} from './query-opening-transaction.js';

export interface PoolTransactionOptions {
  /**
   * Send BEGIN with the transaction's first statement instead of in a round trip of its own.
   * Needs prepared statements (`preparedStatements`), which some poolers cannot keep.
   */
  readonly deferBegin: boolean;
}

/**
 * A transaction the library opened on a pool connection and will commit itself: the one behind
 * `PostgresTransactionHost.run` and the transactional interceptor.
 *
 * BEGIN is deferred: it leaves with the first statement, in the same write and round trip, so a
 * transaction of N statements costs N + 1 round trips instead of N + 2, and one that runs no
 * statement costs none. Code that takes the raw connection (`client`) gets it with BEGIN queued
 * first, so whatever it sends runs inside the transaction.
 */
export class PoolTransaction extends ActiveTransaction {
  private finished = false;
  /** BEGIN has not been sent yet. */
  private beginDeferred: boolean;

  /** A checked-out client whose connection dies emits 'error'; unhandled, it ends the process. */
  private readonly onError = (error: Error) => (this.broken ??= error);
  private broken: Error | undefined;

  private constructor(
    private readonly poolClient: pg.PoolClient,
    deferBegin: boolean,
  ) {
    super(poolClient, targetOfClient(poolClient));
    this.beginDeferred = deferBegin;
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

  /** The connection, with BEGIN queued ahead of whatever is sent on it. */
  override get client(): pg.ClientBase {
    if (this.beginDeferred) this.track(this.sendBegin());
    return this.connection;
  }

  override query<R extends pg.QueryResultRow = any>(
    config: pg.QueryConfig,
  ): Promise<pg.QueryResult<R>> {
    if (!this.beginDeferred) return this.connection.query<R>(config);
    if (!canOpenTransaction(this.connection, config)) {
      // Queued in order: BEGIN, then the statement. A text without parameters keeps the simple
      // protocol; the connection's first transaction prepares BEGIN for the ones after it.
      this.track(this.sendBegin());
      return this.connection.query<R>(config);
    }
    this.beginDeferred = false;
    return queryOpeningTransaction<R>(this.connection, config, (error) => {
      // Whatever is queued behind must not run outside the transaction: drop the connection.
      this.broken ??= error;
      (
        this.connection as unknown as { connection?: { stream?: { destroy(): void } } }
      ).connection?.stream?.destroy();
    });
  }

  private sendBegin(): Promise<unknown> {
    this.beginDeferred = false;
    const protocol = (this.connection as unknown as { connection?: { parsedStatements?: object } })
      .connection;
    return this.connection.query(protocol?.parsedStatements ? PREPARE_AND_BEGIN : 'BEGIN');
  }

  /** Waits for writes still in flight, commits, then sends the wake-ups. */
  async commit(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    let command: string | undefined;
    try {
      await this.settled();
      // No statement ran: there is no transaction to commit.
      if (!this.beginDeferred) ({ command } = await this.poolClient.query('COMMIT'));
    } catch (error) {
      await this.poolClient.query('ROLLBACK').catch(() => undefined);
      this.rolledBack();
      this.release(error as Error);
      throw error;
    }
    this.release();
    if (command === 'ROLLBACK') {
      this.rolledBack();
      throw new TransactionAbortedError();
    }
    this.committed();
  }

  /** Rolls back; nothing written inside is kept or announced. */
  async rollback(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.settled().catch(() => undefined);
    let broken: Error | undefined;
    if (!this.beginDeferred) {
      await this.poolClient.query('ROLLBACK').catch((error: Error) => (broken = error));
    }
    this.rolledBack();
    this.release(broken);
  }
}
