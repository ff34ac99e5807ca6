import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { migrate, MigrationError, ServerPostgres } from '../../lib/index.js';
import { loadMigrations } from '../../lib/migrate/migrations.js';
import { messageQueries } from '../../lib/sql/message.queries.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { query } from '../helpers/transport.js';

describe('migrate()', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(async () => {
    await db.drop();
  });

  it('applies every migration once when ten processes start at once', async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, () => migrate(db.url, { schema: 'concurrent' })),
    );
    const latest = loadMigrations().length;
    expect(results.filter((r) => r.applied.length > 0)).toEqual([
      { applied: Array.from({ length: latest }, (_, i) => i + 1), version: latest },
    ]);
    expect(results.every((r) => r.version === latest)).toBe(true);
    const versions = await query(
      db.url,
      'SELECT version FROM concurrent.migrations ORDER BY version',
    );
    expect(versions.map((v) => v.version)).toEqual(Array.from({ length: latest }, (_, i) => i + 1));
  });

  it('sets the messages table to be vacuumed and analyzed early', async () => {
    await migrate(db.url, { schema: 'vacuumed' });
    const [table] = await query(
      db.url,
      "SELECT reloptions FROM pg_class WHERE oid = 'vacuumed.messages'::regclass",
    );
    expect(table.reloptions).toEqual(
      expect.arrayContaining([
        'autovacuum_vacuum_scale_factor=0.01',
        'autovacuum_vacuum_insert_scale_factor=0.01',
        'autovacuum_analyze_scale_factor=0.02',
      ]),
    );
  });

  it('leaves room for a claim to update every row of a bulk-inserted backlog in place', async () => {
    await migrate(db.url, { schema: 'roomy' });
    const { claim } = messageQueries('"roomy"');
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      await client.query(
        `INSERT INTO roomy.messages (recipient, pattern, kind, idempotency_key, payload)
         SELECT 'g', 'order.paid', 'event', 'key-' || n, json_build_object('n', n)
         FROM generate_series(1, 1000) AS n`,
      );
      await client.query('BEGIN');
      const claimed = await client.query(claim, ['g', 50, 30_000]);
      // This transaction's own counts: a HOT update keeps the row on its page and adds no index
      // entry, which needs room on the page for a second version of every row.
      const [counts] = (
        await client.query(
          `SELECT pg_stat_get_xact_tuples_updated(oid)::int AS updated,
                  pg_stat_get_xact_tuples_hot_updated(oid)::int AS in_place
           FROM pg_class WHERE oid = 'roomy.messages'::regclass`,
        )
      ).rows;
      await client.query('ROLLBACK');
      expect(claimed.rowCount).toBe(50);
      expect(counts).toEqual({ updated: 50, in_place: 50 });
    } finally {
      await client.end();
    }
  });

  it('quotes a hostile schema name', async () => {
    const schema = 'we"ird; DROP TABLE x; --';
    await migrate(db.url, { schema });
    const rows = await query(
      db.url,
      'SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = $1',
      [schema],
    );
    expect(rows[0].n).toBeGreaterThanOrEqual(3);
  });

  it('refuses a database migrated by a newer release', async () => {
    await migrate(db.url, { schema: 'future' });
    await query(db.url, "INSERT INTO future.migrations (version, name) VALUES (9999, 'future')");
    await expect(migrate(db.url, { schema: 'future' })).rejects.toThrow(
      /version 9999, newer than this library's/,
    );
  });

  it('rejects schema names PostgreSQL reserves', async () => {
    await expect(migrate(db.url, { schema: 'pg_mine' })).rejects.toThrow(/reserves/);
    await expect(migrate(db.url, { schema: 'pg_mine' })).rejects.not.toBeInstanceOf(MigrationError);
  });

  it('keeps a server with migrationsRun off from starting on a schema that lacks migrations', async () => {
    await migrate(db.url, { schema: 'behind' });
    const latest = loadMigrations().length;
    await query(db.url, 'DELETE FROM behind.migrations WHERE version = $1', [latest]);
    for (const schema of ['behind', 'absent']) {
      const server = new ServerPostgres({
        connectionString: db.url,
        schema,
        group: 'g',
        migrationsRun: false,
      });
      let failure: unknown;
      await server.listen((error) => (failure = error));
      await server.close();
      expect(failure).toBeInstanceOf(MigrationError);
      expect((failure as Error).message).toContain(
        `Schema "${schema}" is at version ${schema === 'behind' ? latest - 1 : 0}, older than`,
      );
    }
  });

  it('lets a server with migrationsRun off start on a current schema', async () => {
    await migrate(db.url, { schema: 'current' });
    const server = new ServerPostgres({
      connectionString: db.url,
      schema: 'current',
      group: 'g',
      migrationsRun: false,
    });
    let failure: unknown = 'not called';
    await server.listen((error) => (failure = error));
    await server.close();
    expect(failure).toBeUndefined();
  });
});
