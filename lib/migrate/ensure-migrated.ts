import type pg from 'pg';
import { migrate } from './migrate.js';

const migrated = new WeakMap<pg.Pool, Map<string, Promise<unknown>>>();

/**
 * Migrates once per pool and schema in this process, however many servers, clients and modules
 * start on that pool and in whatever order Nest starts them. A failed run is forgotten so that
 * the next start-up tries again.
 */
export function ensureMigrated(pool: pg.Pool, schema: string): Promise<unknown> {
  let schemas = migrated.get(pool);
  if (!schemas) migrated.set(pool, (schemas = new Map()));
  let run = schemas.get(schema);
  if (!run) {
    run = migrate(pool, { schema }).catch((error: unknown) => {
      schemas.delete(schema);
      throw error;
    });
    schemas.set(schema, run);
  }
  return run;
}
