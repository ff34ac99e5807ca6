import { statement } from '../../lib/sql/statement.js';
import { query } from './database.js';

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
