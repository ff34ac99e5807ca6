import { AsyncLocalStorage } from 'node:async_hooks';
import type pg from 'pg';
import { InFlight } from './in-flight.js';

/**
 * A transaction the library can write messages into: the consume transaction of a handler, the
 * one an interceptor opened, or one a user handed over. Writers register work to run after
 * commit, which is where wake-ups are sent, so NOTIFY never runs inside the transaction.
 */
export class ActiveTransaction {
  private readonly afterCommitCallbacks: Array<() => void> = [];
  private readonly pendingWrites = new InFlight();

  constructor(
    /** The connection holding the open transaction. */
    protected readonly connection: pg.ClientBase,
    /** host:port/database of that connection: only clients on the same database join. */
    readonly target: string,
    /**
     * Whether the library commits this transaction. When a user commits it themselves, the
     * library cannot run work after the commit, so wake-ups go inside the transaction instead.
     */
    readonly ownsCommit = true,
  ) {}

  /** The connection of the transaction, for code that sends its own queries on it. */
  get client(): pg.ClientBase {
    return this.connection;
  }

  /** Runs a query in the transaction. */
  query<R extends pg.QueryResultRow = any>(config: pg.QueryConfig): Promise<pg.QueryResult<R>> {
    return this.connection.query<R>(config);
  }

  /** Runs `callback` once the transaction has committed; dropped on rollback. */
  afterCommit(callback: () => void): void {
    this.afterCommitCallbacks.push(callback);
  }

  /**
   * Tracks a write made into this transaction. `emit` is hot, so a handler may return before its
   * INSERT was even sent; the owner awaits `settled()` before it releases or commits.
   */
  track(write: Promise<unknown>): void {
    this.pendingWrites.track(write);
  }

  /** Resolves when every tracked write has finished; rejects with the first that failed. */
  settled(): Promise<void> {
    return this.pendingWrites.settled();
  }

  /** Called by the owner after COMMIT succeeded. */
  committed(): void {
    for (const callback of this.afterCommitCallbacks.splice(0)) callback();
  }

  /** Called by the owner after ROLLBACK: the registered work is discarded. */
  rolledBack(): void {
    this.afterCommitCallbacks.length = 0;
  }
}

const storage = new AsyncLocalStorage<ActiveTransaction>();

/** The transaction bound to the current async context, if any. */
export function currentTransaction(): ActiveTransaction | undefined {
  return storage.getStore();
}

/** Runs `fn` with `transaction` as the ambient transaction of everything it awaits or subscribes. */
export function runInTransaction<T>(transaction: ActiveTransaction, fn: () => T): T {
  return storage.run(transaction, fn);
}
