import { migrate } from '../../lib/index.js';
import { messageQueries } from '../../lib/sql/message.queries.js';
import type { Contender } from './contender.js';
import { benchPool } from './database.js';
import { BENCH_GROUP, insertTransportBacklog, TRANSPORT_DEFAULTS } from './transport-contender.js';
import { insertBusinessRow, type BenchPayload } from './workload.js';

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
 * no library code: what the statement sequence alone allows on this machine. `onHandled` is told
 * of each message once its batch has committed.
 */
export async function drainWithStatements(
  url: string,
  workers: number,
  batchSize: number,
  mode: SavepointMode,
  onHandled?: (payload: BenchPayload) => void,
): Promise<number> {
  const queries = messageQueries('"nestjs_transport"');
  const pool = benchPool(url, workers * 2);
  let handled = 0;
  const worker = async () => {
    for (;;) {
      const { rows } = await pool.query<{ id: string; payload: { data: BenchPayload } }>(
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
          await client.query(insertBusinessRow([row.payload.data.n]));
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
        if (onHandled) for (const row of rows) onHandled(row.payload.data);
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

export interface StatementFloorSettings {
  readonly workers: number;
  readonly batchSize: number;
  readonly mode: SavepointMode;
}

/**
 * The drain's floor as a contender: the library's own statements sent by plain pg loops on the
 * library's schema. Measured beside the others, it shows how much of the drain's cost is the
 * statements and how much the library's code around them.
 */
export function statementFloorContender({
  workers,
  batchSize,
  mode,
}: StatementFloorSettings): Contender {
  return {
    name: 'statement-floor',
    label: "floor: the library's statements from bare pg",
    settings:
      `${workers} loops of plain \`pg\` calls, batches of ${batchSize}: the library's claim, ` +
      "the handler's INSERT per message (prepared, as `ctx.query` sends it), the library's " +
      'settle and `COMMIT`; ' +
      `savepoints: ${mode}; no Nest, no library code`,
    guarantee: 'business row written in the consume transaction (exactly once)',

    async prepare(url) {
      await migrate(url);
    },

    async startConsumer(url, hooks) {
      // The loops end when a claim finds nothing: the backlog is in place before they start. A
      // failure is kept for stop(), so it surfaces in the run, not as an unhandled rejection.
      let failure: unknown;
      const drained = drainWithStatements(url, workers, batchSize, mode, (payload) =>
        hooks.handled?.(payload),
      ).catch((error: unknown) => {
        failure = error;
      });
      return {
        stop: async () => {
          await drained;
          if (failure !== undefined) throw failure;
        },
      };
    },

    async startProducer() {
      throw new Error('The statement floor only drains a backlog');
    },

    insertBacklog: (url, count) => insertTransportBacklog(url, count),
  };
}

/**
 * The statements the library runs at its defaults while no handler fails: its concurrency and
 * batch size, no savepoints.
 */
export const STATEMENT_FLOOR = statementFloorContender({
  workers: TRANSPORT_DEFAULTS.concurrency,
  batchSize: TRANSPORT_DEFAULTS.batchSize,
  mode: 'none',
});
