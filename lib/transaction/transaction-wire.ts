import type pg from 'pg';
import {
  BEGIN_STATEMENT,
  canFold,
  COMMIT_STATEMENT,
  PREPARE_AND_BEGIN,
  PREPARE_AND_COMMIT,
  PREPARE_AND_RELEASE,
  PREPARE_AND_SAVEPOINT,
  queryFolded,
  RELEASE_STATEMENT,
  SAVEPOINT_STATEMENT,
  queryGuarded,
  speaksProtocol,
} from './folded-query.js';
import { StatementLane } from './statement-lane.js';
import { MESSAGE_SAVEPOINT } from '../sql/message.queries.js';
import { transactionClient } from './transaction-client.js';

/**
 * The message savepoint of a consume batch, as far as the next statement is concerned: set and
 * nothing due, to be set before it, or to be released and set afresh before it.
 */
type SavepointDue = 'none' | 'set' | 'renew';

/**
 * How a transaction's statements reach its connection: one at a time and in order, through its
 * lane; a deferred BEGIN, and a deferred message savepoint, with the first statement that can
 * carry them, and COMMIT with the last one where the connection allows it, in the same write
 * and round trip. It knows nothing of whether the transaction may still send: its owner checks
 * that first.
 */
export class TransactionWire {
  private readonly lane: StatementLane;
  private handedOut: pg.ClientBase | undefined;
  private savepointDue: SavepointDue = 'none';

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

  /** Sends a statement, with BEGIN and the message savepoint if they are still deferred. */
  send<R extends pg.QueryResultRow = any>(config: pg.QueryConfig): Promise<pg.QueryResult<R>> {
    if (!this.beginDeferred && this.savepointDue === 'none') {
      return this.lane.send(() => this.connection.query<R>(config));
    }
    const due = this.dueStatements();
    if (!canFold(this.connection, config, ...due)) {
      // Sent in order: BEGIN (or the savepoint), then the statement. A text without parameters
      // keeps the simple protocol; the connection's first transaction prepares BEGIN and the
      // savepoint statements for the ones after it.
      this.sendDueAlone();
      return this.lane.send(() => this.connection.query<R>(config));
    }
    this.beginDeferred = false;
    this.savepointDue = 'none';
    const before = { statements: due, failed: (error: Error) => this.beginFailed(error) };
    return this.lane.send(() => queryFolded<R>(this.connection, config, { before }));
  }

  /**
   * Sets the message savepoint before the next statement, whichever it is: one that carries it,
   * or on its own. Nothing is sent now, so a message that sends no statement costs none.
   */
  deferSavepoint(): void {
    this.savepointDue = 'set';
  }

  /**
   * Keeps what was written since the savepoint: the next statement releases it and sets a fresh
   * one first. Nothing written since (the savepoint is still due) leaves it as it is.
   */
  renewSavepoint(): void {
    if (this.savepointDue === 'none') this.savepointDue = 'renew';
  }

  /**
   * Undoes what was written since the savepoint, which stays set. Nothing was sent since, if it
   * is still due: then there is nothing to undo, and nothing is sent.
   */
  async rollbackToSavepoint(): Promise<void> {
    if (this.savepointDue !== 'none') return;
    await this.control(`ROLLBACK TO SAVEPOINT ${MESSAGE_SAVEPOINT}`);
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
    // COMMIT keeps everything: a savepoint still due is not needed.
    const before = this.beginDeferred
      ? { statements: [BEGIN_STATEMENT], failed: (error: Error) => this.beginFailed(error) }
      : undefined;
    this.beginDeferred = false;
    this.savepointDue = 'none';
    let command: string | undefined;
    const folded = { before, commit: { done: (tag: string) => (command = tag) } };
    const result = await this.lane.send(() => queryFolded<R>(this.connection, config, folded));
    return { result, command };
  }

  /** Sends COMMIT, prepared where COMMIT may fold; resolves with its command tag. */
  async sendCommit(): Promise<string> {
    this.savepointDue = 'none';
    const prepared = this.foldCommit && speaksProtocol(this.connection);
    const { command } = await this.control(prepared ? PREPARE_AND_COMMIT : 'COMMIT');
    return command;
  }

  /**
   * The connection, for code that sends its own queries on it, with what is due (a deferred
   * BEGIN, the savepoint) sent first: its `query` waits its turn in the lane, and is refused
   * once `ended()`.
   */
  handOut(ended: () => boolean): pg.ClientBase {
    this.sendDueAlone();
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

  /** The prepared statements due before the next statement, in order. */
  private dueStatements(): string[] {
    const due = this.beginDeferred ? [BEGIN_STATEMENT] : [];
    if (this.savepointDue === 'renew') due.push(RELEASE_STATEMENT);
    if (this.savepointDue !== 'none') due.push(SAVEPOINT_STATEMENT);
    return due;
  }

  /**
   * Sends what is due (BEGIN, the savepoint) on its own, ahead of whatever is sent next, each
   * preparing its statement on this connection for the statements after it to carry. Should one
   * fail, the connection is dropped: nothing sent behind it may run outside the transaction or
   * the savepoint.
   */
  private sendDueAlone(): void {
    const due: pg.QueryConfig[] = [];
    if (this.beginDeferred) due.push(PREPARE_AND_BEGIN);
    if (this.savepointDue === 'renew') due.push(PREPARE_AND_RELEASE);
    if (this.savepointDue !== 'none') due.push(PREPARE_AND_SAVEPOINT);
    this.beginDeferred = false;
    this.savepointDue = 'none';
    for (const statement of due) {
      this.hooks.track(
        speaksProtocol(this.connection) ? this.open(statement) : this.control(statement.text),
      );
    }
  }

  /**
   * BEGIN, or a savepoint statement, did not run. Whatever is sent behind it must not run
   * outside the transaction or the savepoint, so the connection is dropped.
   */
  private beginFailed(error: Error): void {
    this.hooks.beginFailed(error);
    (
      this.connection as unknown as { connection?: { stream?: { destroy(): void } } }
    ).connection?.stream?.destroy();
  }
}
