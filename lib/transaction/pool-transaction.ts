import type pg from 'pg';
import { ActiveTransaction } from './active-transaction.js';
import { targetOfClient } from './client-target.js';

/**
 * A transaction the library opened on a pool connection and will commit itself: the one behind
 * `PostgresTransactionHost.run` and the transactional interceptor.
 */
export class PoolTransaction extends ActiveTransaction {
  private finished = false;

  /** A checked-out client whose connection dies emits 'error'; unhandled, it ends the process. */
  private readonly onError = (error: Error) => (this.broken ??= error);
  private broken: Error | undefined;

  private constructor(private readonly poolClient: pg.PoolClient) {
    super(poolClient, targetOfClient(poolClient));
    poolClient.on('error', this.onError);
  }

  private release(error?: Error): void {
    this.poolClient.off('error', this.onError);
    this.poolClient.release(error ?? this.broken);
  }

  static async begin(pool: pg.Pool): Promise<PoolTransaction> {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
    } catch (error) {
      client.release(error as Error);
      throw error;
    }
    return new PoolTransaction(client);
  }

  /** Waits for writes still in flight, commits, then sends the wake-ups. */
  async commit(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    try {
      await this.settled();
      await this.poolClient.query('COMMIT');
    } catch (error) {
      await this.poolClient.query('ROLLBACK').catch(() => undefined);
      this.rolledBack();
      this.release(error as Error);
      throw error;
    }
    this.release();
    this.committed();
  }

  /** Rolls back; nothing written inside is kept or announced. */
  async rollback(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.settled().catch(() => undefined);
    let broken: Error | undefined;
    await this.poolClient.query('ROLLBACK').catch((error: Error) => (broken = error));
    this.rolledBack();
    this.release(broken);
  }
}
