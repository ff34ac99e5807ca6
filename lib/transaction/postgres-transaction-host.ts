import { Inject, Injectable, Optional } from '@nestjs/common';
import type pg from 'pg';
import { POSTGRES_POOL } from '../postgres.constants.js';
import { PostgresTransport } from '../postgres-transport.service.js';
import { runUserQuery } from '../sql/user-statements.js';
import { ActiveTransaction } from './active-transaction.js';
import { currentTransaction, runInTransaction } from './ambient-transaction.js';
import { targetOfClient } from './client-target.js';
import { PoolTransaction } from './pool-transaction.js';

/**
 * The ambient transaction, for services: `host.query(...)` runs in the current request's or
 * handler's transaction when there is one, and on the pool otherwise. Every `emit` made inside
 * joins the same transaction.
 */
@Injectable()
export class PostgresTransactionHost {
  /** Whether `query` prepares repeated texts: the module's `preparedStatements` option. */
  private readonly preparedStatements: boolean;

  constructor(
    @Inject(POSTGRES_POOL) private readonly pool: pg.Pool,
    @Optional() transport?: PostgresTransport,
  ) {
    this.preparedStatements = transport?.connection.preparedStatements ?? true;
  }

  /** The connection of the ambient transaction, or the pool when there is none. */
  get client(): pg.ClientBase | pg.Pool {
    return currentTransaction()?.client ?? this.pool;
  }

  /** Whether code here runs inside a transaction. */
  get isInTransaction(): boolean {
    return currentTransaction() !== undefined;
  }

  /**
   * Runs a query in the ambient transaction, or on the pool. A text with parameters runs as a
   * prepared statement from its second use on, unless `preparedStatements` is false.
   */
  query<R extends pg.QueryResultRow = any>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    return runUserQuery<R>(
      currentTransaction() ?? this.pool,
      text,
      values,
      this.preparedStatements,
    );
  }

  /** Opens a transaction on the pool that the caller commits or rolls back. */
  begin(): Promise<PoolTransaction> {
    return PoolTransaction.begin(this.pool, { deferBegin: this.preparedStatements });
  }

  /**
   * Runs `fn` in a transaction and commits when it resolves, or rolls back when it throws. Inside
   * an ambient transaction it joins that one instead (no savepoint): the outermost owner commits.
   */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (currentTransaction()) return fn();
    const transaction = await this.begin();
    let result: T;
    try {
      result = await runInTransaction(transaction, fn);
    } catch (error) {
      await transaction.rollback();
      throw error;
    }
    await transaction.commit();
    return result;
  }

  /**
   * Runs `fn` with a transaction the caller opened and will commit (a pg client after BEGIN, as
   * TypeORM, Knex, Drizzle or MikroORM can expose). Emits inside write through that client, and
   * `runWith` resolves only once they are written, so commit after awaiting it. Their wake-ups
   * are sent by NOTIFY inside the same transaction, since the library cannot see the commit:
   * PostgreSQL delivers them on commit and drops them on rollback.
   */
  async runWith<T>(client: pg.ClientBase, fn: () => T | Promise<T>): Promise<T> {
    if (typeof (client as { query?: unknown })?.query !== 'function') {
      throw new TypeError(
        'runWith expects a node-postgres Client or PoolClient inside a transaction',
      );
    }
    const transaction = new ActiveTransaction(client, targetOfClient(client), false);
    try {
      const result = await runInTransaction(transaction, fn);
      await transaction.settled();
      return result;
    } finally {
      // The caller commits from here on; anything made later in fn's context is refused.
      transaction.handOver();
    }
  }
}
