import type pg from 'pg';

/**
 * Round trips on a pool of one connection, counted by the ReadyForQuery messages it receives:
 * PostgreSQL sends one per Sync or simple query, so one per round trip.
 */
export async function countRoundTrips(pool: pg.Pool): Promise<{ count(): number }> {
  const client = await pool.connect();
  let count = 0;
  (client as unknown as { connection: NodeJS.EventEmitter }).connection.on(
    'readyForQuery',
    () => count++,
  );
  client.release();
  return { count: () => count };
}
