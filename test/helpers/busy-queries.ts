import type pg from 'pg';

/** What node-postgres's client holds about the statement it is executing. */
interface ClientState {
  readonly readyForQuery: boolean;
  readonly _queryQueue: unknown[];
}

/**
 * Records the text of every query given to one of `pool`'s connections while it was still
 * executing another: node-postgres 8 queues such a query with a deprecation warning, and pg 9
 * stops queueing. Watches the connections the pool opens from now on.
 */
export function recordBusyQueries(pool: pg.Pool): string[] {
  const busy: string[] = [];
  pool.on('connect', (client) => {
    const state = client as unknown as ClientState;
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: unknown }).query = (...args: unknown[]) => {
      if (state.readyForQuery === false || state._queryQueue.length > 0) busy.push(textOf(args[0]));
      return query(...args);
    };
  });
  return busy;
}

function textOf(config: unknown): string {
  if (typeof config === 'string') return config;
  const { text, name } = (config ?? {}) as { text?: string; name?: string };
  return text ?? name ?? String(config);
}
