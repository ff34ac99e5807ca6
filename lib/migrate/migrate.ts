import pg from 'pg';
import { MigrationError } from '../errors/migration.error.js';
import { quoteSchemaOption } from '../sql/identifiers.js';
import { loadMigrations, type Migration } from './migrations.js';

export interface MigrateOptions {
  /** Schema holding the transport's tables. Default `nestjs_transport`. */
  schema?: string;
}

export interface MigrateResult {
  /** Versions applied by this call (empty when the schema was already up to date). */
  applied: number[];
  /** The schema's version after the call. */
  version: number;
}

type Queryable = Pick<pg.Pool, 'connect'> | pg.Client;

/** First key of the two-key advisory lock: a constant naming this library ("pgtr"). */
const LOCK_NAMESPACE = 0x70677472;

/**
 * Applies the pending migrations in one transaction under an advisory lock keyed by the schema.
 * Ten processes starting at once queue on the lock; the first applies, the others find nothing
 * to do. A database migrated by a newer release is refused rather than silently used.
 */
export async function migrate(
  connection: string | Queryable,
  options: MigrateOptions = {},
): Promise<MigrateResult> {
  const schemaName = options.schema ?? 'nestjs_transport';
  const schema = quoteSchemaOption('schema', schemaName);
  const { client, release } = await checkout(connection);
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [
      LOCK_NAMESPACE,
      schemaName,
    ]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${schema}.migrations (
         version integer PRIMARY KEY,
         name text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const current = await schemaVersion(client, schema);
    const migrations = loadMigrations();
    const latest = migrations.length;
    if (current > latest) {
      throw new MigrationError(
        `Schema "${schemaName}" is at version ${current}, newer than this library's ${latest}. ` +
          `Upgrade nestjs-pg-transport, or point it at another schema.`,
      );
    }
    const pending = migrations.filter((migration) => migration.version > current);
    for (const migration of pending) await apply(client, schema, migration);
    await client.query('COMMIT');
    return { applied: pending.map((m) => m.version), version: latest };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    if (error instanceof MigrationError) throw error;
    throw new MigrationError(
      `Migrating schema "${schemaName}" failed: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  } finally {
    await release();
  }
}

/** The highest migration applied to `schema` (quoted for SQL), 0 for none. */
export async function schemaVersion(
  queryable: Pick<pg.ClientBase, 'query'> | Pick<pg.Pool, 'query'>,
  schema: string,
): Promise<number> {
  const { rows } = await queryable.query<{ version: number }>(
    `SELECT coalesce(max(version), 0)::int AS version FROM ${schema}.migrations`,
  );
  return rows[0].version;
}

async function apply(client: pg.ClientBase, schema: string, migration: Migration): Promise<void> {
  try {
    await client.query(migration.sql.replaceAll('{{schema}}', schema));
  } catch (error) {
    throw new MigrationError(
      `Migration ${migration.version} (${migration.name}) failed: ${(error as Error).message}`,
      { cause: error },
    );
  }
  await client.query(`INSERT INTO ${schema}.migrations (version, name) VALUES ($1, $2)`, [
    migration.version,
    migration.name,
  ]);
}

async function checkout(
  connection: string | Queryable,
): Promise<{ client: pg.ClientBase; release: () => Promise<void> }> {
  if (typeof connection === 'string') {
    const client = new pg.Client({ connectionString: connection });
    await client.connect();
    return { client, release: () => client.end() };
  }
  if (connection instanceof pg.Client)
    return { client: connection, release: async () => undefined };
  const client = await connection.connect();
  return { client, release: async () => client.release() };
}
