import pg from 'pg';

/**
 * The prepared statements that open and close a transaction around another statement. Each is
 * prepared once per connection, by an ordinary query, so that the folded one needs no Parse
 * message of its own: node-postgres credits every ParseComplete to the statement of the query in
 * flight, and a Parse of BEGIN would mark that statement prepared before it was.
 */
export const BEGIN_STATEMENT = 'nestjs_transport_begin';
export const COMMIT_STATEMENT = 'nestjs_transport_commit';

/** The ordinary queries that run BEGIN or COMMIT and prepare them on their connection. */
export const PREPARE_AND_BEGIN: pg.QueryConfig = { name: BEGIN_STATEMENT, text: 'BEGIN' };
export const PREPARE_AND_COMMIT: pg.QueryConfig = { name: COMMIT_STATEMENT, text: 'COMMIT' };

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
  /** BEGIN runs first. Called, before the query rejects, if BEGIN did not run. */
  readonly begin?: { readonly failed: (error: Error) => void };
  /** COMMIT runs last, if the statement succeeded; its command tag is reported. */
  readonly commit?: { readonly done: (command: string) => void };
}

/**
 * A query whose messages are preceded by Bind and Execute of BEGIN, and/or followed by those of
 * COMMIT, all before its one Sync: the transaction opens or closes in the same write and round
 * trip as the statement, as Npgsql does with the BEGIN of a transaction. PostgreSQL runs the
 * messages in order and skips the rest after an error, so BEGIN has run before the statement
 * does (a statement that fails leaves the transaction open and aborted, as it would after a
 * BEGIN of its own), and COMMIT runs only if the statement succeeded.
 */
class FoldedQuery extends pg.Query {
  /** CommandComplete messages received: BEGIN's, the statement's, COMMIT's. */
  private completed = 0;
  /** Set while this query writes its messages. */
  private writing = false;

  constructor(
    config: pg.QueryConfig,
    private readonly folded: Folded,
    callback: (error: Error | undefined, result: pg.QueryResult) => void,
  ) {
    super(config, undefined, callback as never);
  }

  /** Called by Query.submit with the stream corked, once the query has been validated. */
  prepare(connection: ProtocolConnection): void {
    if (this.folded.begin) {
      connection.bind!({ statement: BEGIN_STATEMENT, portal: '' });
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
    const statementAt = this.folded.begin ? 2 : 1;
    if (this.completed < statementAt) return; // BEGIN's
    if (this.completed > statementAt) {
      // pg-protocol's CommandComplete carries the command tag as `text`.
      this.folded.commit?.done((message as { text?: string }).text ?? '');
      return;
    }
    queryInternals.handleCommandComplete.call(this, message, connection);
  }

  handleError(error: Error, connection: ProtocolConnection): void {
    // BEGIN itself failed (its prepared statement was deallocated, say): no transaction is open,
    // and queries queued behind this one would run outside it. An error raised while writing (a
    // parameter that cannot be serialized) comes after BEGIN was sent: PostgreSQL still runs it.
    if (this.folded.begin && this.completed === 0 && !this.writing) this.folded.begin.failed(error);
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
 * Whether `config` can carry `statement` (BEGIN_STATEMENT or COMMIT_STATEMENT) on `client`:
 * node-postgres would send it with the extended protocol anyway (it has parameters or a name; a
 * text without them keeps the simple protocol, which allows several statements), the client is
 * node-postgres's own, and this connection has already prepared `statement`.
 */
export function canFold(client: pg.ClientBase, config: pg.QueryConfig, statement: string): boolean {
  const hasValues = Array.isArray(config.values) && config.values.length > 0;
  if (!hasValues && config.name === undefined) return false;
  if ((config as { rows?: unknown }).rows !== undefined) return false;
  return protocolOf(client)?.parsedStatements?.[statement] !== undefined;
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
