import { messageQueries } from '../../lib/sql/message.queries.js';
import { benchPool } from './database.js';
import { BENCH_GROUP } from './transport-contender.js';
import { INSERT_BUSINESS_ROW } from './workload.js';

/**
 * How a raw consumer sends the library's own statements (claim, settle, commit) around the
 * handler's INSERT:
 * - `separate`: SAVEPOINT and RELEASE each on its own round trip (3 per message);
 * - `merged`: SAVEPOINT sent with BEGIN, and `RELEASE; SAVEPOINT` in one round trip (2 per
 *   message), as the library does since 0d46bbd;
 * - `none`: no savepoint at all (1 per message; a failing handler would then roll back the
 *   whole batch).
 */
export type SavepointMode = 'separate' | 'merged' | 'none';

const SP = 'pg_transport_message';

/**
 * Drains the bench group's pending messages with `workers` loops of plain pg calls, no Nest and
 * no library code: what the statement sequence alone allows on this machine.
 */
export async function drainWithStatements(
  url: string,
  workers: number,
  batchSize: number,
  mode: SavepointMode,
): Promise<number> {
  const queries = messageQueries('"nestjs_transport"');
  const pool = benchPool(url, workers * 2);
  let handled = 0;
  const worker = async () => {
    for (;;) {
      const { rows } = await pool.query<{ id: string; payload: { data: { n: number } } }>(
        queries.claim,
        [BENCH_GROUP, batchSize, 30_000],
      );
      if (rows.length === 0) return;
      const ids = rows.map((r) => r.id);
      const client = await pool.connect();
      try {
        await client.query(mode === 'merged' ? `BEGIN; SAVEPOINT ${SP}` : 'BEGIN');
        for (const [i, row] of rows.entries()) {
          if (mode === 'separate') await client.query(`SAVEPOINT ${SP}`);
          await client.query(INSERT_BUSINESS_ROW, [row.payload.data.n]);
          if (mode === 'separate') await client.query(`RELEASE SAVEPOINT ${SP}`);
          if (mode === 'merged') {
            await client.query(
              i < rows.length - 1
                ? `RELEASE SAVEPOINT ${SP}; SAVEPOINT ${SP}`
                : `RELEASE SAVEPOINT ${SP}`,
            );
          }
        }
        await client.query(queries.settle, [
          ids,
          ids.map(() => 'consumed'),
          ids.map(() => 0),
          ids.map(() => null),
        ]);
        await client.query('COMMIT');
        handled += rows.length;
      } finally {
        client.release();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: workers }, worker));
  } finally {
    await pool.end();
  }
  return handled;
}
