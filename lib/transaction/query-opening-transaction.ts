import pg from 'pg';

/**
 * The prepared statement that opens a transaction ahead of another statement. Prepared once per
 * connection, by an ordinary query, so that the folded BEGIN needs no Parse message of its own:
 * node-postgres credits every ParseComplete to the statement of the query in flight, and a Parse
 * of BEGIN would mark that statement prepared before it was.
 */
export const BEGIN_STATEMENT = 'nestjs_transport_begin';

/**
 * The parts of node-postgres's connection and Query that folding relies on: the extended-protocol
 * messages and the per-connection record of prepared statements, as pg-cursor uses them.
 */
interface ProtocolConnection {
  readonly parsedStatements?: Record<string, string>;
  bind?(config: { statement: string; portal: string }): void;
  execute?(config: { portal: string }): void;
}

interface QueryInternals {
  prepare(connection: ProtocolConnection): void;
  handleCommandComplete(message: unknown, connection: ProtocolConnection): void;
  handleError(error: Error, connection: ProtocolConnection): void;
}

const queryInternals = pg.Query.prototype as unknown as QueryInternals;

/**
 * A query whose messages are preceded by Bind and Execute of BEGIN, before its own Sync: the
 * transaction opens in the same write and the same round trip as its first statement, as Npgsql
 * does with the BEGIN of a transaction. PostgreSQL runs the messages in order, so BEGIN has run
 * before the statement does; a statement that fails leaves the transaction open and aborted, as
 * it would have after a BEGIN of its own.
 */
class QueryOpeningTransaction extends pg.Query {
  /** Whether BEGIN's CommandComplete arrived, i.e. the transaction is open. */
  private opened = false;
  /** Set while this query writes its messages. */
  private writing = false;

  constructor(
    config: pg.QueryConfig,
    private readonly onBeginFailed: (error: Error) => void,
    callback: (error: Error | undefined, result: pg.QueryResult) => void,
  ) {
    super(config, undefined, callback as never);
  }

  /** Called by Query.submit with the stream corked, once the query has been validated. */
  prepare(connection: ProtocolConnection): void {
    connection.bind!({ statement: BEGIN_STATEMENT, portal: '' });
    connection.execute!({ portal: '' });
    this.writing = true;
    try {
      queryInternals.prepare.call(this, connection);
    } finally {
      this.writing = false;
    }
  }

  /** The first CommandComplete is BEGIN's: it is not a result of this query. */
  handleCommandComplete(message: unknown, connection: ProtocolConnection): void {
    if (!this.opened) {
      this.opened = true;
      return;
    }
    queryInternals.handleCommandComplete.call(this, message, connection);
  }

  handleError(error: Error, connection: ProtocolConnection): void {
    // BEGIN itself failed (its prepared statement was deallocated, say): no transaction is open,
    // and queries queued behind this one would run outside it. An error raised while writing (a
    // parameter that cannot be serialized) comes after BEGIN was sent: PostgreSQL still runs it.
    if (!this.opened && !this.writing) this.onBeginFailed(error);
    queryInternals.handleError.call(this, error, connection);
  }
}

function protocolOf(client: pg.ClientBase): ProtocolConnection | undefined {
  const connection = (client as unknown as { connection?: ProtocolConnection }).connection;
  if (
    !connection?.parsedStatements ||
    typeof connection.bind !== 'function' ||
    typeof connection.execute !== 'function'
  ) {
    return undefined;
  }
  return connection;
}

/**
 * Whether `config` can carry BEGIN on `client`: node-postgres would send it with the extended
 * protocol anyway (it has parameters or a name; a text without them keeps the simple protocol,
 * which allows several statements), the client is node-postgres's own (not pg-native), and this
 * connection has already prepared BEGIN_STATEMENT.
 */
export function canOpenTransaction(client: pg.ClientBase, config: pg.QueryConfig): boolean {
  const hasValues = Array.isArray(config.values) && config.values.length > 0;
  if (!hasValues && config.name === undefined) return false;
  if ((config as { rows?: unknown }).rows !== undefined) return false;
  const statements = protocolOf(client)?.parsedStatements;
  return statements?.[BEGIN_STATEMENT] !== undefined;
}

/** The ordinary query that opens a transaction and prepares BEGIN_STATEMENT on its connection. */
export const PREPARE_AND_BEGIN: pg.QueryConfig = { name: BEGIN_STATEMENT, text: 'BEGIN' };

/**
 * Runs `config` on `client` with BEGIN in front of it, in one round trip. Check
 * `canOpenTransaction` first. `onBeginFailed` runs, before the query rejects, if BEGIN did not run:
 * the connection must then not run anything else of the transaction.
 */
export function queryOpeningTransaction<R extends pg.QueryResultRow>(
  client: pg.ClientBase,
  config: pg.QueryConfig,
  onBeginFailed: (error: Error) => void,
): Promise<pg.QueryResult<R>> {
  return new Promise((resolve, reject) => {
    const query = new QueryOpeningTransaction(config, onBeginFailed, (error, result) =>
      error ? reject(error) : resolve(result as pg.QueryResult<R>),
    );
    void client.query(query);
  });
}
