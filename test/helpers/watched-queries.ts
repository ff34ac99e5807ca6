import type pg from 'pg';

/** What node-postgres's client holds about the statement it is executing. */
interface ClientState {
  readonly readyForQuery: boolean;
  readonly _queryQueue: unknown[];
}

/**
 * Calls `onQuery` with the text (or statement name) of every query given to one of `pool`'s
 * connections, before the connection takes it. Watches the connections the pool opens from now
 * on.
 */
export function watchQueries(
  pool: pg.Pool,
  onQuery: (text: string, client: pg.PoolClient) => void,
): void {
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: unknown }).query = (...args: unknown[]) => {
      onQuery(textOf(args[0]), client);
      return query(...args);
    };
  });
}

/**
 * Records the text of every query given to one of `pool`'s connections while it was still
 * executing another: node-postgres 8 queues such a query with a deprecation warning, and pg 9
 * stops queueing. Watches the connections the pool opens from now on.
 */
export function recordBusyQueries(pool: pg.Pool): string[] {
  const busy: string[] = [];
  watchQueries(pool, (text, client) => {
    const state = client as unknown as ClientState;
    if (state.readyForQuery === false || state._queryQueue.length > 0) busy.push(text);
  });
  return busy;
}

function textOf(config: unknown): string {
  if (typeof config === 'string') return config;
  const { text, name } = (config ?? {}) as { text?: string; name?: string };
  return text ?? name ?? '';
}
