import type pg from 'pg';
import { InFlight } from './in-flight.js';
import { LateWrites } from './late-writes.js';
import { TransactionWire } from './transaction-wire.js';
import { TransactionAbortedError } from '../errors/transaction-aborted.error.js';
import { TransactionEndedError } from '../errors/transaction-ended.error.js';

/** How a transaction the library opens may save round trips (prepared statements on). */
export interface TransactionFolding {
  /** BEGIN has not been sent: the first statement sent through `query` carries it. */
  readonly deferBegin?: boolean;
  /** `queryAndCommit` may send COMMIT with its statement. */
  readonly foldCommit?: boolean;
  /**
   * `write` may hold a write until the promise callbacks queued so far have run, so that one
   * nobody awaits leaves with COMMIT (see LateWrites). Only for an owner that commits through
   * `commitWithLateWrites`.
   */
  readonly lateWrites?: boolean;
}

/**
 * A transaction the library can write messages into: the consume transaction of a handler, the
 * one an interceptor opened, or one a user handed over. Writers register work to run after
 * commit, which is where wake-ups are sent, so NOTIFY never runs inside the transaction.
 *
 * A transaction the library opens may defer its BEGIN: BEGIN then leaves with the first
 * statement sent through `query`, in the same write and round trip, so a transaction of N
 * statements costs N + 1 round trips instead of N + 2, and one that runs no statement costs
 * none. Code that takes the raw connection (`client`) gets it with BEGIN queued first, so
 * whatever it sends runs inside the transaction. Likewise its COMMIT may leave with its last
 * statement (`queryAndCommit`).
 */
export class ActiveTransaction {
  private readonly afterCommitCallbacks: Array<() => void> = [];
  private readonly pendingWrites = new InFlight();
  /** COMMIT or ROLLBACK has been sent: anything sent after it would run outside. */
  private ended = false;
  private readonly late: LateWrites | undefined;
  /** Every statement of the transaction leaves through it. */
  private readonly wire: TransactionWire;

  constructor(
    /** The connection holding the open transaction. */
    connection: pg.ClientBase,
    /** host:port/database of that connection: only clients on the same database join. */
    readonly target: string,
    /**
     * Whether the library commits this transaction. When a user commits it themselves, the
     * library cannot run work after the commit, so wake-ups go inside the transaction instead.
     */
    readonly ownsCommit = true,
    folding: TransactionFolding = {},
  ) {
    this.wire = new TransactionWire(
      connection,
      folding.deferBegin ?? false,
      folding.foldCommit ?? false,
      { track: (sent) => this.track(sent), beginFailed: (error) => this.beginFailed(error) },
    );
    this.late = folding.lateWrites
      ? new LateWrites(
          (config) => this.send(config),
          (sent) => this.track(sent),
        )
      : undefined;
  }

  /** Whether BEGIN has been sent (or queued); until then there is nothing to commit. */
  get begun(): boolean {
    return this.wire.begun;
  }

  /**
   * Whether statements may still join: false from the moment COMMIT or ROLLBACK is sent, since
   * the connection then goes back to its pool.
   */
  get isOpen(): boolean {
    return !this.ended;
  }

  /**
   * The connection of the transaction, for code that sends its own queries on it (an ORM, a
   * query builder): its `query` takes its turn among the transaction's statements, and is
   * refused once the transaction has ended, when the connection may already serve another.
   */
  get client(): pg.ClientBase {
    if (this.ended) throw new TransactionEndedError('A use of its connection');
    this.late?.flush();
    return this.wire.handOut(() => this.ended);
  }

  /** Runs a query in the transaction; a deferred BEGIN leaves with it. */
  query<R extends pg.QueryResultRow = any>(config: pg.QueryConfig): Promise<pg.QueryResult<R>> {
    this.late?.flush();
    return this.send<R>(config);
  }

  /**
   * Runs a write whose statement `statement` builds, and hands its result to `onResult` before
   * the commit's after-commit work runs. The transaction waits for it before it commits. Where
   * the owner allows it (`lateWrites`), the statement waits until the promise callbacks queued
   * so far have run, or the next statement, so that a write nobody awaits leaves with COMMIT.
   */
  write<R extends pg.QueryResultRow = any>(
    statement: Promise<pg.QueryConfig>,
    onResult?: (result: pg.QueryResult<R>) => void,
  ): Promise<pg.QueryResult<R>> {
    const deliver = onResult as ((result: pg.QueryResult) => void) | undefined;
    if (this.late) return this.late.add(statement, deliver) as Promise<pg.QueryResult<R>>;
    const sent = statement.then(async (config) => {
      const result = await this.query<R>(config);
      onResult?.(result);
      return result;
    });
    this.track(sent);
    return sent;
  }

  /**
   * Sends a statement now, with BEGIN if it is still deferred: every statement of the
   * transaction but one carrying COMMIT leaves here, refused once the transaction has ended.
   */
  private send<R extends pg.QueryResultRow = any>(
    config: pg.QueryConfig,
  ): Promise<pg.QueryResult<R>> {
    if (this.ended) return Promise.reject(new TransactionEndedError('A query'));
    return this.wire.send<R>(config);
  }

  /**
   * Runs the transaction's last statement and commits: one round trip when the connection has
   * prepared COMMIT, two otherwise. Then runs the after-commit work. If the statement fails,
   * COMMIT does not run and the transaction is left open and aborted, for the caller to roll
   * back.
   */
  async queryAndCommit<R extends pg.QueryResultRow = any>(
    config: pg.QueryConfig,
  ): Promise<pg.QueryResult<R>> {
    this.late?.flush();
    if (!this.wire.foldsWithCommit(config)) {
      const result = await this.query<R>(config);
      this.finishCommit(await this.sendCommit());
      return result;
    }
    const { result, command } = await this.sendWithCommit<R>(config);
    this.finishCommit(command);
    return result;
  }

  /**
   * Keeps held writes for the owner, which is about to commit or roll back and takes them. Call
   * before waiting for `settled()`.
   */
  protected holdLateWrites(): void {
    this.late?.hold();
  }

  /**
   * Commits once the transaction has settled: the last late write, if any, leaves with COMMIT
   * (and with BEGIN, if nothing was sent yet) in one round trip. Resolves with COMMIT's command
   * tag, or undefined when the transaction ran nothing and had nothing to commit.
   */
  protected async commitWithLateWrites(): Promise<string | undefined> {
    // The writes queued before the last one are sent now, ahead of it.
    const last = this.late?.takeLast();
    if (!last) {
      if (this.wire.begun) return this.sendCommit();
      this.end();
      return undefined;
    }
    const config = last.config!;
    try {
      if (!this.wire.foldsWithCommit(config)) {
        LateWrites.deliver(last, await this.send(config));
        await this.settled();
        return await this.sendCommit();
      }
      const { result, command } = await this.sendWithCommit(config);
      LateWrites.deliver(last, result);
      // The writes sent ahead of it have answered by now; a failure among them failed it too.
      await this.settled();
      return command;
    } catch (error) {
      last.reject(error);
      throw error;
    }
  }

  /** Sends `config` with COMMIT after it (and BEGIN before it, if still deferred). */
  private async sendWithCommit<R extends pg.QueryResultRow>(
    config: pg.QueryConfig,
  ): Promise<{ result: pg.QueryResult<R>; command: string | undefined }> {
    if (this.ended) throw new TransactionEndedError('A query');
    this.end();
    return this.wire.sendWithCommit<R>(config);
  }

  /** Sends, in order, the late writes still queued (a rollback runs them first, as it found them). */
  protected flushLateWrites(): void {
    this.late?.flush();
  }

  /** Sends COMMIT, prepared where COMMIT may fold; resolves with its command tag. */
  protected sendCommit(): Promise<string> {
    this.end();
    return this.wire.sendCommit();
  }

  /**
   * Takes the answer to COMMIT (undefined when nothing was sent): runs the after-commit work,
   * or, if PostgreSQL rolled back instead, drops it and throws.
   */
  protected finishCommit(command: string | undefined): void {
    if (command === 'ROLLBACK') {
      this.rolledBack();
      throw new TransactionAbortedError();
    }
    this.committed();
  }

  /**
   * BEGIN did not run; the connection is being dropped, so that nothing sent behind it runs
   * outside the transaction. For an owner that must know.
   */
  protected beginFailed(_error: Error): void {}

  /**
   * Sends the statement that opens the transaction, for an owner that sends its own (with a
   * savepoint, say) rather than deferring BEGIN: what is sent after it waits for it, and should
   * it fail, the connection is dropped, so that none of that runs outside the transaction.
   */
  open(statement: pg.QueryConfig): Promise<unknown> {
    return this.wire.open(statement);
  }

  /**
   * Sends a transaction control statement of the owner's (SAVEPOINT, ROLLBACK) in its turn
   * among the transaction's statements, whether or not the transaction has ended.
   */
  control(statement: string | pg.QueryConfig): Promise<pg.QueryResult> {
    return this.wire.control(statement);
  }

  /**
   * Sets a consume batch's message savepoint before the next statement: one that carries it, or
   * on its own. A message that sends no statement costs no round trip for it.
   */
  deferSavepoint(): void {
    this.wire.deferSavepoint();
  }

  /** Keeps a message's writes: the next statement releases the savepoint and sets a fresh one. */
  renewSavepoint(): void {
    this.wire.renewSavepoint();
  }

  /** Undoes a message's writes back to the savepoint, which stays set (nothing sent: nothing to undo). */
  rollbackToSavepoint(): Promise<void> {
    return this.wire.rollbackToSavepoint();
  }

  /** Resolves once every statement sent in the transaction has been answered. */
  answered(): Promise<void> {
    return this.wire.answered();
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

  /** Runs the after-commit work, once COMMIT succeeded. */
  private committed(): void {
    for (const callback of this.afterCommitCallbacks.splice(0)) callback();
  }

  /** Marks the transaction ended, before its owner sends COMMIT or ROLLBACK. */
  protected end(): void {
    this.ended = true;
  }

  /**
   * Ends the library's part in a transaction its caller commits: statements and emits made
   * after this are refused instead of being sent on a connection the caller has moved on with.
   */
  handOver(): void {
    this.end();
  }

  /**
   * Called by the owner as it rolls back: nothing more joins, the registered work is discarded,
   * and writes still queued fail with `cause`.
   */
  rolledBack(cause?: unknown): void {
    this.ended = true;
    this.afterCommitCallbacks.length = 0;
    this.late?.rejectAll(cause ?? new TransactionEndedError('A write'));
  }
}
