import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startThrowawayPostgres } from '#throwaway-postgres';

/** The PostgreSQL server the benchmarks run against. */
export interface BenchServer {
  readonly url: string;
  /** True when started here because DATABASE_URL was unset. */
  readonly throwaway: boolean;
  release(): Promise<void>;
}

/**
 * DATABASE_URL when it is set; otherwise a throwaway server, durable as a real one (fsync stays on,
 * which is the default).
 */
export async function acquireServer(
  settings: Record<string, string | number> = {},
): Promise<BenchServer> {
  const url = process.env.DATABASE_URL;
  if (url) return { url, throwaway: false, release: async () => undefined };
  const server = await startThrowawayPostgres({ settings });
  return { url: server.url, throwaway: true, release: () => server.destroy() };
}

/** A database created for one run and dropped after it, so runs never see each other's rows. */
export interface BenchDatabase {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export async function createDatabase(serverUrl: string): Promise<BenchDatabase> {
  const name = `bench_${randomBytes(5).toString('hex')}`;
  await query(serverUrl, `CREATE DATABASE "${name}"`);
  return {
    name,
    url: withDatabase(serverUrl, name),
    drop: async () => {
      await query(serverUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    },
  };
}

/** Runs `fn` on a fresh database and drops the database afterwards, whatever happens. */
export async function inFreshDatabase<T>(
  serverUrl: string,
  fn: (database: BenchDatabase) => Promise<T>,
): Promise<T> {
  const database = await createDatabase(serverUrl);
  try {
    return await fn(database);
  } finally {
    await database.drop();
  }
}

/** Runs one statement on a short-lived connection. */
export async function query<R extends pg.QueryResultRow = any>(
  url: string,
  text: string,
  values?: unknown[],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/**
 * A pool whose idle clients may be terminated (a dropped database, a restarted server) without
 * ending the process: pg.Pool emits 'error' for them, and an unhandled 'error' throws.
 */
export function benchPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max });
  pool.on('error', (error) => console.error(`bench pool: ${error.message}`));
  return pool;
}
