import type pg from 'pg';
import { statement } from '../../lib/sql/statement.js';
import { query } from './database.js';
import { nowMs } from './stats.js';

/** What every contender sends: a sequence number and the monotonic time of the send. */
export interface BenchPayload {
  readonly n: number;
  /** `nowMs()` when the send was started (or scheduled, for paced senders). */
  readonly sentAt: number;
}

/** The same work for every contender: one business row per message. */
export const BUSINESS_TABLE = `
  CREATE TABLE business (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    n integer NOT NULL
  )`;

export const INSERT_BUSINESS_ROW = 'INSERT INTO business (n) VALUES ($1)';

/**
 * The business INSERT as a named prepared statement: what `ctx.query` and
 * `PostgresTransactionHost.query` send from a text's second use on, for the baselines that send
 * the library's statements, or the plain ones, by bare `pg`.
 */
export const insertBusinessRow = statement(INSERT_BUSINESS_ROW, true);

export async function createBusinessTable(url: string): Promise<void> {
  await query(url, BUSINESS_TABLE);
}

/** How many business rows exist, and for how many distinct messages. Equal means no duplicate. */
export async function countBusinessRows(url: string): Promise<{ rows: number; distinct: number }> {
  const [row] = await query<{ rows: number; distinct: number }>(
    url,
    'SELECT count(*)::int AS rows, count(DISTINCT n)::int AS distinct FROM business',
  );
  return row;
}

/** Opens `count` connections of `pool` and returns them to it, so that timed work opens none. */
export async function openConnections(pool: pg.Pool, count: number): Promise<void> {
  const clients = await Promise.all(Array.from({ length: count }, () => pool.connect()));
  for (const client of clients) client.release();
}

/**
 * `loops` closed loops, each calling `work` with the next sequence number as soon as its last
 * call resolved, until `seconds` pass; the calls completed, in all and per second.
 */
export async function closedLoops(
  loops: number,
  seconds: number,
  work: (n: number) => Promise<unknown>,
): Promise<{ completed: number; perSecond: number }> {
  let next = 1;
  let completed = 0;
  const start = nowMs();
  const deadline = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (nowMs() < deadline) {
        await work(next++);
        completed++;
      }
    }),
  );
  return { completed, perSecond: (completed * 1000) / (nowMs() - start) };
}
