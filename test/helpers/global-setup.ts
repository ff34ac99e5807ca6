import { startThrowawayPostgres } from '#throwaway-postgres';

/**
 * Uses DATABASE_URL when it is set; otherwise starts one throwaway PostgreSQL for the whole run.
 * Every test file then creates its own database on it (see database.ts).
 */
export default async function globalSetup(): Promise<void> {
  if (process.env.DATABASE_URL) return;
  // Correctness tests do not depend on durability; benchmarks run with fsync on.
  const server = await startThrowawayPostgres({
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' },
  });
  process.env.DATABASE_URL = server.url;
  (globalThis as Record<string, unknown>).__THROWAWAY_POSTGRES__ = server;
}
