import pg from 'pg';
import { MESSAGE_SAVEPOINT } from '../sql/message.queries.js';

/**
 * The prepared statements that open and close a transaction, or set a consume batch's message
 * savepoint, around another statement. Each is
 * prepared once per connection, by an ordinary query, so that the folded one needs no Parse
 * message of its own: node-postgres credits every ParseComplete to the statement of the query in
 * flight, and a Parse of BEGIN would mark that statement prepared before it was.
 */
export const BEGIN_STATEMENT = 'nestjs_transport_begin';
export const COMMIT_STATEMENT = 'nestjs_transport_commit';
export const SAVEPOINT_STATEMENT = 'nestjs_transport_savepoint';
export const RELEASE_STATEMENT = 'nestjs_transport_release';

/** The ordinary queries that run BEGIN or COMMIT and prepare them on their connection. */
export const PREPARE_AND_BEGIN: pg.QueryConfig = { name: BEGIN_STATEMENT, text: 'BEGIN' };
export const PREPARE_AND_COMMIT: pg.QueryConfig = { name: COMMIT_STATEMENT, text: 'COMMIT' };

/** Likewise for the message savepoint: set it, or release it (a fresh one is set after). */
export const PREPARE_AND_SAVEPOINT: pg.QueryConfig = {
  name: SAVEPOINT_STATEMENT,
  text: `SAVEPOINT ${MESSAGE_SAVEPOINT}`,
};
export const PREPARE_AND_RELEASE: pg.QueryConfig = {
  name: RELEASE_STATEMENT,
  text: `RELEASE SAVEPOINT ${MESSAGE_SAVEPOINT}`,
};

/**
 * The parts of node-postgres's connection and Query that folding relies on: the extended-protocol
 * messages and the per-connection record of prepared statements, as pg-cursor uses them.
 */
interface ProtocolConnection {
  readonly parsedStatements?: Record<string, string>;
  bind?(config: { statement: string; portal: string }): void;
  execute?(config: { portal: string; rows?: number }): void;
  sync?(): void;
}

interface QueryInternals {
  prepare(connection: ProtocolConnection): void;
  handleCommandComplete(message: unknown, connection: ProtocolConnection): void;
  handleError(error: Error, connection: ProtocolConnection): void;
}

const queryInternals = pg.Query.prototype as unknown as QueryInternals;

/** What a folded query carries besides its own statement. */
export interface Folded {
  /**
   * Prepared statements (BEGIN, a savepoint's) that run first, in order. `failed` is called,
   * before the query rejects, if one of them did not run.
   */
  readonly before?: {
    readonly statements: readonly string[];
    readonly failed: (error: Error) => void;
  };
  /** COMMIT runs last, if the statement succeeded; its command tag is reported. */
  readonly commit?: { readonly done: (command: string) => void };
}

/**
 * A query whose messages are preceded by Bind and Execute of BEGIN (and of the savepoint
 * statements), and/or followed by those of COMMIT, all before its one Sync: the transaction
 * opens or closes in the same write and round trip as the statement, as Npgsql does with the
 * BEGIN of a transaction. PostgreSQL runs the messages in order and skips the rest after an
 * error, so BEGIN has run before the statement does (a statement that fails leaves the
 * transaction open and aborted, as it would after a BEGIN of its own), and COMMIT runs only if
 * the statement succeeded.
 */
class FoldedQuery extends pg.Query {
  /** CommandComplete messages received: those run before, the statement's, COMMIT's. */
  private completed = 0;
  /** The prepared statements that run before this one. */
  private readonly before: readonly string[];
  /** Set while this query writes its messages. */
  private writing = false;

  constructor(
    config: pg.QueryConfig,
    private readonly folded: Folded,
    callback: (error: Error | undefined, result: pg.QueryResult) => void,
  ) {
    super(config, undefined, callback as never);
    this.before = folded.before?.statements ?? [];
  }

  /** Called by Query.submit with the stream corked, once the query has been validated. */
  prepare(connection: ProtocolConnection): void {
    for (const statement of this.before) {
      connection.bind!({ statement, portal: '' });
      connection.execute!({ portal: '' });
    }
    this.writing = true;
    try {
      queryInternals.prepare.call(this, connection);
    } finally {
      this.writing = false;
    }
  }

  /** Called by prepare after the statement's Bind and Describe: Execute, then Sync. */
  _getRows(connection: ProtocolConnection): void {
    connection.execute!({ portal: '' });
    if (this.folded.commit) {
      connection.bind!({ statement: COMMIT_STATEMENT, portal: '' });
      connection.execute!({ portal: '' });
    }
    connection.sync!();
  }

  handleCommandComplete(message: unknown, connection: ProtocolConnection): void {
    this.completed++;
    const statementAt = this.before.length + 1;
    if (this.completed < statementAt) return; // BEGIN's, or a savepoint's
    if (this.completed > statementAt) {
      // pg-protocol's CommandComplete carries the command tag as `text`.
      this.folded.commit?.done((message as { text?: string }).text ?? '');
      return;
    }
    queryInternals.handleCommandComplete.call(this, message, connection);
  }

  handleError(error: Error, connection: ProtocolConnection): void {
    // BEGIN itself failed (its prepared statement was deallocated, say): no transaction is open,
    // and queries queued behind this one would run outside it; likewise a savepoint that was not
    // set. An error raised while writing (a parameter that cannot be serialized) comes after
    // those were sent: PostgreSQL still runs them.
    if (this.completed < this.before.length && !this.writing) this.folded.before!.failed(error);
    queryInternals.handleError.call(this, error, connection);
  }
}

/**
 * An ordinary query whose failure is reported synchronously, as PostgreSQL's error arrives and
 * before node-postgres sends the next query queued on the connection.
 */
class GuardedQuery extends pg.Query {
  constructor(
    config: pg.QueryConfig,
    private readonly failed: (error: Error) => void,
    callback: (error: Error | undefined, result: pg.QueryResult) => void,
  ) {
    super(config, undefined, callback as never);
  }

  handleError(error: Error, connection: ProtocolConnection): void {
    this.failed(error);
    queryInternals.handleError.call(this, error, connection);
  }
}

/**
 * Runs `config` on node-postgres's own `client` (check `speaksProtocol`) and calls `failed` the
 * moment it fails, before anything queued behind it is sent.
 */
export function queryGuarded(
  client: pg.ClientBase,
  config: pg.QueryConfig,
  failed: (error: Error) => void,
): Promise<pg.QueryResult> {
  return new Promise((resolve, reject) => {
    const query = new GuardedQuery(config, failed, (error, result) =>
      error ? reject(error) : resolve(result),
    );
    void client.query(query);
  });
}

function protocolOf(client: pg.ClientBase): ProtocolConnection | undefined {
  const connection = (client as unknown as { connection?: ProtocolConnection }).connection;
  if (
    !connection?.parsedStatements ||
    typeof connection.bind !== 'function' ||
    typeof connection.execute !== 'function' ||
    typeof connection.sync !== 'function'
  ) {
    return undefined;
  }
  return connection;
}

/** Whether `client` is node-postgres's own (not pg-native), whose protocol folding drives. */
export function speaksProtocol(client: pg.ClientBase): boolean {
  return protocolOf(client) !== undefined;
}

/**
 * Whether `config` can carry `statements` (the prepared statements above) on `client`:
 * node-postgres would send it with the extended protocol anyway (it has parameters or a name; a
 * text without them keeps the simple protocol, which allows several statements), the client is
 * node-postgres's own, and this connection has already prepared every one of `statements`.
 */
export function canFold(
  client: pg.ClientBase,
  config: pg.QueryConfig,
  ...statements: string[]
): boolean {
  const hasValues = Array.isArray(config.values) && config.values.length > 0;
  if (!hasValues && config.name === undefined) return false;
  if ((config as { rows?: unknown }).rows !== undefined) return false;
  const prepared = protocolOf(client)?.parsedStatements;
  return prepared !== undefined && statements.every((name) => prepared[name] !== undefined);
}

/** Runs `config` on `client` with what `folded` asks for, in one round trip. Check `canFold`. */
export function queryFolded<R extends pg.QueryResultRow>(
  client: pg.ClientBase,
  config: pg.QueryConfig,
  folded: Folded,
): Promise<pg.QueryResult<R>> {
  return new Promise((resolve, reject) => {
    const query = new FoldedQuery(config, folded, (error, result) =>
      error ? reject(error) : resolve(result as pg.QueryResult<R>),
    );
    void client.query(query);
  });
}
