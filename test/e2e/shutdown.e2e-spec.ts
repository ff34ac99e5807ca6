import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import { POSTGRES_TRANSPORT, PostgresContext } from '../../lib/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { holdClaimOnLock } from '../helpers/fault-harness.js';
import { activeHandles, expectNothingLeft } from '../helpers/leaks.js';
import { query, startClient, startServer } from '../helpers/transport.js';
import { sleep, waitFor } from '../helpers/wait-for.js';

const started: string[] = [];
const finished: string[] = [];

@Controller()
class SlowController {
  @EventPattern<string>('slow', POSTGRES_TRANSPORT)
  async slow(@Payload() job: { key: string; ms: number }, @Ctx() ctx: PostgresContext) {
    started.push(job.key);
    await sleep(job.ms);
    await ctx.query('INSERT INTO done (key) VALUES ($1)', [job.key]);
    finished.push(job.key);
  }
}

async function ourConnections(db: TestDatabase): Promise<number> {
  const [row] = await query(
    db.url,
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = $1 AND application_name LIKE 'nestjs-pg-transport%'`,
    [db.name],
  );
  return row.n;
}

describe('shutdown', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
    await query(db.url, 'CREATE TABLE done (key text NOT NULL)');
  });

  afterAll(async () => {
    await db.drop();
  });

  it('lets an in-flight handler finish, then leaves no connection, socket or timer', async () => {
    const before = activeHandles();
    const { app } = await startServer(db.url, [SlowController], { group: 'slow' });
    const client = await startClient(db.url);
    await lastValueFrom(client.emit('slow', { key: 'a', ms: 400 }));
    await waitFor(() => started.includes('a'), { message: 'the handler to start' });
    await client.close();
    await app.close();
    expect(finished).toContain('a');
    expect(await query(db.url, "SELECT key FROM done WHERE key = 'a'")).toEqual([{ key: 'a' }]);
    const [message] = await query(
      db.url,
      "SELECT consumed_at IS NOT NULL AS consumed FROM nestjs_transport.messages WHERE payload->'data'->>'key' = 'a'",
    );
    expect(message.consumed).toBe(true);
    await expectNothingLeft(before, db.url, db.name);
  });

  it('cuts a handler that outlives shutdownTimeoutMs; its message comes back', async () => {
    const { app } = await startServer(db.url, [SlowController], {
      group: 'slow',
      shutdownTimeoutMs: 200,
      leaseMs: 500,
    });
    const client = await startClient(db.url);
    await lastValueFrom(client.emit('slow', { key: 'b', ms: 1_200 }));
    await waitFor(() => started.includes('b'), { message: 'the handler to start' });
    const closing = Date.now();
    await app.close();
    expect(Date.now() - closing).toBeLessThan(2_000);
    const [message] = await query(
      db.url,
      "SELECT consumed_at FROM nestjs_transport.messages WHERE payload->'data'->>'key' = 'b'",
    );
    expect(message.consumed_at).toBeNull();
    // A new instance picks it up after the lease.
    const next = await startServer(db.url, [SlowController], {
      group: 'slow',
      sweepIntervalMs: 100,
    });
    await waitFor(
      async () => (await query(db.url, "SELECT 1 FROM done WHERE key = 'b'")).length === 1,
      { timeoutMs: 10_000, message: 'b handled by the next instance' },
    );
    await client.close();
    await next.app.close();
  });

  // A claim waits on a table lock that someone else holds (a migration's ALTER TABLE, a manual
  // LOCK): shutdown must not wait for it beyond shutdownTimeoutMs.
  it('ends a claim still waiting past shutdownTimeoutMs, and leaves no connection', async () => {
    const { app } = await startServer(db.url, [SlowController], {
      group: 'slow',
      sweepIntervalMs: 100,
      shutdownTimeoutMs: 200,
    });
    const locker = await holdClaimOnLock(db.url, db.name);
    try {
      // Bounded, so that a close stuck on the lock fails here rather than at jest's timeout.
      let timer: NodeJS.Timeout | undefined;
      const closedInTime = await Promise.race([
        app.close().then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 2_000))),
      ]);
      clearTimeout(timer);
      expect(closedInTime).toBe(true);
      // The claim's backend notices its client is gone once the lock lets it run.
      await locker.query('COMMIT');
      await waitFor(async () => (await ourConnections(db)) === 0, {
        message: 'connections closed',
      });
    } finally {
      await locker.end();
    }
  });
});
