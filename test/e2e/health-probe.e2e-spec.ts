import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { HealthIndicatorService } from '@nestjs/terminus';
import pg from 'pg';
import { PostgresHealthIndicator, type PostgresHealthOptions } from '../../lib/health/index.js';
import { InvalidOptionError, PostgresTransport } from '../../lib/index.js';
import { healthQueries } from '../../lib/sql/admin.queries.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { query } from '../helpers/transport.js';
import { waitFor } from '../helpers/wait-for.js';

type Options = ConstructorParameters<typeof PostgresTransport>[0];

/** A transport and an indicator on it, made by hand as a user without Nest's injector would. */
async function indicatorOn(options: Options, health?: PostgresHealthOptions) {
  const transport = new PostgresTransport(options);
  const indicator = new PostgresHealthIndicator(transport, new HealthIndicatorService(), health);
  return { transport, indicator };
}

describe('PostgresHealthIndicator probes', () => {
  let db: TestDatabase;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await db.drop();
  });

  async function started(health?: PostgresHealthOptions, poolConfig: pg.PoolConfig = {}) {
    const made = await indicatorOn(
      { poolConfig: { connectionString: db.url, ...poolConfig } },
      health,
    );
    await made.transport.onModuleInit();
    cleanups.push(() => made.transport.onApplicationShutdown());
    return made;
  }

  // First, while no other transport of this file shares (and so keeps open) the listener.
  it('reports a closed transport as down in both checks', async () => {
    const { transport, indicator } = await indicatorOn({ connectionString: db.url });
    await transport.onModuleInit();
    await transport.onApplicationShutdown();
    const alive = await indicator.isAlive();
    expect(alive.postgres).toMatchObject({
      status: 'down',
      reason: 'listener-closed',
      listener: { state: 'closed' },
    });
    const ready = await indicator.isHealthy();
    expect(ready.postgres).toMatchObject({ status: 'down', reason: 'listener-closed' });
    expect(ready.postgres.message).toContain('the pool could not run SELECT 1');
  });

  it('reports a database that does not answer in time as down with reason "timeout"', async () => {
    const { transport, indicator } = await started({ timeoutMs: 300 });
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    try {
      await locker.query('BEGIN; LOCK TABLE nestjs_transport.messages IN ACCESS EXCLUSIVE MODE');
      const began = Date.now();
      const result = await indicator.isHealthy('db');
      expect(Date.now() - began).toBeLessThan(1_000);
      expect(result.db).toMatchObject({
        status: 'down',
        reason: 'timeout',
        message: 'PostgreSQL did not answer within 300 ms',
        pool: { reachable: true },
      });
      expect(result.db).not.toHaveProperty('groups');
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
    // The stuck connection was destroyed, not returned: the next probe gets a working one.
    await waitFor(async () => (await indicator.isHealthy('db')).db.status === 'up');
    expect(transport.pool.waitingCount).toBe(0);
  });

  it('times out waiting for a pooled connection, then gives that connection back', async () => {
    const { transport, indicator } = await started({ timeoutMs: 200 }, { max: 1 });
    const held = await transport.pool.connect();
    const result = await indicator.isHealthy();
    expect(result.postgres).toMatchObject({
      status: 'down',
      reason: 'timeout',
      pool: { reachable: false, total: 1, idle: 0, waiting: 0 },
    });
    expect(result.postgres.message).toMatch(/^no pooled connection became free within 200 ms/);
    held.release();
    // The late checkout is handed back at once, so the pool is whole again.
    await waitFor(() => transport.pool.waitingCount === 0 && transport.pool.idleCount === 1);
    expect((await indicator.isHealthy()).postgres.status).toBe('up');
  });

  it('reports an unreachable database without its password, and never throws', async () => {
    const { transport, indicator } = await indicatorOn({
      connectionString: 'postgres://alice:s3cret-pw@127.0.0.1:1/nowhere',
      migrationsRun: false,
    });
    cleanups.push(() => transport.onApplicationShutdown());
    const result = await indicator.isHealthy();
    expect(result.postgres).toMatchObject({
      status: 'down',
      reason: 'unreachable',
      pool: { reachable: false },
    });
    expect(result.postgres.message).toMatch(/^the pool could not run SELECT 1: .*ECONNREFUSED/);
    expect(JSON.stringify(result)).not.toContain('s3cret-pw');
    // Liveness does not care: the listener keeps retrying.
    expect((await indicator.isAlive()).postgres.status).toBe('up');
  });

  it('validates default options at construction and per-call options without throwing', async () => {
    const transport = new PostgresTransport({ connectionString: db.url });
    const make = (health: unknown) => () =>
      new PostgresHealthIndicator(
        transport,
        new HealthIndicatorService(),
        health as PostgresHealthOptions,
      );
    expect(make({ timeoutMs: 0 })).toThrow(InvalidOptionError);
    expect(make({ timeoutMs: 0 })).toThrow(/"timeoutMs"/);
    expect(make({ maxPendingAgms: 5 })).toThrow(/"maxPendingAgms": not an option/);
    expect(make({ groups: { a: { maxDeadLetters: -1 } } })).toThrow(/"groups\.a\.maxDeadLetters"/);
    expect(make({ maxPendingAgeMs: null, groups: { a: { maxPendingAgeMs: 5 } } })).not.toThrow();
    await transport.onApplicationShutdown();

    const { indicator } = await started();
    const result = await indicator.isHealthy('postgres', { countLimit: 1.5 });
    expect(result.postgres).toMatchObject({ status: 'down', reason: 'invalid-option' });
    expect(result.postgres.message).toMatch(/^Invalid option "countLimit"/);
  });

  it('answers the backlog from the partial indexes, without scanning the table', async () => {
    const { indicator } = await started({ maxPendingAgeMs: null });
    await query(
      db.url,
      `INSERT INTO nestjs_transport.subscriptions (pattern, kind, group_name)
       SELECT 'p', 'event', 'g' || i FROM generate_series(1, 5) AS i;
       INSERT INTO nestjs_transport.messages
         (recipient, pattern, kind, idempotency_key, payload, consumed_at, dead_at)
       SELECT 'g' || (i % 5 + 1), 'p', 'event', 'k' || i, '{}',
              CASE WHEN i % 100 > 1 THEN now() END, CASE WHEN i % 100 = 1 THEN now() END
       FROM generate_series(1, 100000) AS i;
       ANALYZE nestjs_transport.messages`,
    );
    const text = healthQueries('"nestjs_transport"').backlog.replaceAll('$1', '10000');
    const [{ 'QUERY PLAN': plan }] = await query(db.url, `EXPLAIN (FORMAT JSON) ${text}`);
    // Every access to messages goes through a partial index (plain, index-only or bitmap).
    const indexes: string[] = [];
    const messageScans: string[] = [];
    const walk = (node: any) => {
      if (node['Index Name']) indexes.push(node['Index Name']);
      if (node['Relation Name'] === 'messages') messageScans.push(node['Node Type']);
      for (const child of node.Plans ?? []) walk(child);
    };
    walk(plan[0].Plan);
    expect(indexes.sort()).toEqual(['messages_dead', 'messages_pending', 'messages_pending']);
    expect(messageScans).not.toContain('Seq Scan');
    expect(messageScans.length).toBe(3);

    const began = Date.now();
    const result = await indicator.isHealthy();
    const elapsed = Date.now() - began;
    expect(result.postgres.groups).toMatchObject({
      g1: { pending: 1_000, oldestPendingAgeMs: expect.any(Number), deadLetters: 0 },
      g2: { pending: 0, oldestPendingAgeMs: null, deadLetters: 1_000 },
      g3: { pending: 0, oldestPendingAgeMs: null, deadLetters: 0 },
    });
    expect(elapsed).toBeLessThan(500);
  });
});
