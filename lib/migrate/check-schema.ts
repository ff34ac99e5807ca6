import type pg from 'pg';
import { MigrationError } from '../errors/migration.error.js';
import { SqlState, sqlStateOf } from '../errors/sqlstate.js';
import { schemaVersion } from './migrate.js';
import { loadMigrations } from './migrations.js';

/**
 * With `migrationsRun` off, refuses to start on a schema that lacks this library's migrations:
 * its statements would otherwise fail on every message (the settle relies on migration 0004),
 * and each failure would cost the message an attempt.
 */
export async function assertSchemaCurrent(
  pool: pg.Pool,
  schemaName: string,
  schema: string,
): Promise<void> {
  const latest = loadMigrations().length;
  let version: number;
  try {
    version = await schemaVersion(pool, schema);
  } catch (error) {
    if (sqlStateOf(error) !== SqlState.UndefinedTable) throw error;
    version = 0;
  }
  if (version < latest) {
    throw new MigrationError(
      `Schema "${schemaName}" is at version ${version}, older than this library's ${latest}, and ` +
        '`migrationsRun` is false. Apply the migrations first: call migrate() from ' +
        'nestjs-pg-transport, or run the SQL files of its migrations/ folder in order.',
    );
  }
}
