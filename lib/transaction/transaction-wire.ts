import type pg from 'pg';
import {
  BEGIN_STATEMENT,
  canFold,
  COMMIT_STATEMENT,
  PREPARE_AND_BEGIN,
  PREPARE_AND_COMMIT,
  queryFolded,
  queryGuarded,
  speaksProtocol,
} from './folded-query.js';
import { StatementLane } from './statement-lane.js';
import { transactionClient } from './transaction-client.js';

/**
 * How a transaction's statements reach its connection: one at a time and in order, through its
 * lane; a deferred BEGIN with the first statement that can carry it, and COMMIT with the last
 * one where the connection allows it, in the same write and round trip. It knows nothing of
 * whether the transaction may still send: its owner checks that first.
 */
export class TransactionWire {
  private readonly lane: StatementLane;
  private handedOut: pg.ClientBase | undefined;

  constructor(
    private readonly connection: pg.ClientBase,
    /** BEGIN has not been sent yet. */
    private beginDeferred: boolean,
    /** COMMIT may leave with the last statement. */
    private readonly foldCommit: boolean,
    private readonly hooks: {
      /** Told about a BEGIN sent on its own, so that the owner waits for it. */
      readonly track: (sent: Promise<unknown>) => void;
      /** Told that BEGIN did not run; the connection is then dropped. */
      readonly beginFailed: (error: Error) => void;
    },
  ) {
    this.lane = new StatementLane(connection);
  }

  /** Whether BEGIN has been sent (or is waiting in the lane). */
  get begun(): boolean {
    return !this.beginDeferred;
  }

  /** Sends a statement, with BEGIN if it is still deferred. */
  send<R extends pg.QueryResultRow = any>(config: pg.QueryConfig): Promise<pg.QueryResult<R>> {
    if (!this.beginDeferred) return this.lane.send(() => this.connection.query<R>(config));
    if (!canFold(this.connection, config, BEGIN_STATEMENT)) {
      // Sent in order: BEGIN, then the statement. A text without parameters keeps the simple
      // protocol; the connection's first transaction prepares BEGIN for the ones after it.
      this.beginAlone();
      return this.lane.send(() => this.connection.query<R>(config));
    }
    this.beginDeferred = false;
    const begin = this.openingFailure();
    return this.lane.send(() => queryFolded<R>(this.connection, config, { begin }));
  }

  /** Whether `config` can carry COMMIT (and BEGIN, if still deferred) on this connection. */
  foldsWithCommit(config: pg.QueryConfig): boolean {
    return (
      this.foldCommit &&
      canFold(this.connection, config, COMMIT_STATEMENT) &&
      (!this.beginDeferred || canFold(this.connection, config, BEGIN_STATEMENT))
    );
  }

  /** Sends `config` with COMMIT after it (and BEGIN before it, if still deferred). */
  async sendWithCommit<R extends pg.QueryResultRow>(
    config: pg.QueryConfig,
  ): Promise<{ result: pg.QueryResult<R>; command: string | undefined }> {
    const begin = this.beginDeferred;
    this.beginDeferred = false;
    let command: string | undefined;
    const folded = {
      begin: begin ? this.openingFailure() : undefined,
      commit: { done: (tag: string) => (command = tag) },
    };
    const result = await this.lane.send(() => queryFolded<R>(this.connection, config, folded));
    return { result, command };
  }

  /** Sends COMMIT, prepared where COMMIT may fold; resolves with its command tag. */
  async sendCommit(): Promise<string> {
    const prepared = this.foldCommit && speaksProtocol(this.connection);
    const { command } = await this.control(prepared ? PREPARE_AND_COMMIT : 'COMMIT');
    return command;
  }

  /**
   * The connection, for code that sends its own queries on it, with a deferred BEGIN sent
   * first: its `query` waits its turn in the lane, and is refused once `ended()`.
   */
  handOut(ended: () => boolean): pg.ClientBase {
    if (this.beginDeferred) this.beginAlone();
    this.handedOut ??= transactionClient(this.connection, this.lane, ended);
    return this.handedOut;
  }

  /**
   * Sends the statement that opens the transaction, for an owner that sends its own (with a
   * savepoint, say) rather than deferring BEGIN: what is sent after it waits for it, and should
   * it fail, the connection is dropped, so that none of that runs outside the transaction.
   */
  open(statement: pg.QueryConfig): Promise<unknown> {
    if (!speaksProtocol(this.connection)) return this.control(statement);
    return this.lane.send(() =>
      queryGuarded(this.connection, statement, (error) => this.beginFailed(error)),
    );
  }

  /** Sends a statement in its turn, whatever it is and whether or not BEGIN was deferred. */
  control(statement: string | pg.QueryConfig): Promise<pg.QueryResult> {
    return this.lane.send(() => this.connection.query(statement as pg.QueryConfig));
  }

  /** Resolves once every statement sent has been answered. */
  answered(): Promise<void> {
    return this.lane.idle();
  }

  /** Sends a deferred BEGIN on its own, ahead of whatever is sent next. */
  private beginAlone(): void {
    this.beginDeferred = false;
    this.hooks.track(
      speaksProtocol(this.connection) ? this.open(PREPARE_AND_BEGIN) : this.control('BEGIN'),
    );
  }

  private openingFailure(): { failed: (error: Error) => void } {
    return { failed: (error) => this.beginFailed(error) };
  }

  /**
   * BEGIN did not run. Whatever is sent behind it must not run outside the transaction, so the
   * connection is dropped.
   */
  private beginFailed(error: Error): void {
    this.hooks.beginFailed(error);
    (
      this.connection as unknown as { connection?: { stream?: { destroy(): void } } }
    ).connection?.stream?.destroy();
  }
}
