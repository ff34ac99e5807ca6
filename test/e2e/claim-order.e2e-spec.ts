import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, type INestMicroservice } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import { ClientPostgres, POSTGRES_TRANSPORT, PostgresContext } from '../../lib/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { query, startClient, startServer } from '../helpers/transport.js';
import { waitFor } from '../helpers/wait-for.js';

const handled: number[] = [];

@Controller()
class SlowController {
  @EventPattern<string>('job', POSTGRES_TRANSPORT)
  async job(@Payload() body: { n: number }, @Ctx() ctx: PostgresContext) {
    await ctx.query('SELECT pg_sleep(0.002)');
    handled.push(body.n);
  }
}

describe('claim order: full batches resume after the last claimed row', () => {
  let db: TestDatabase;
  let client: ClientPostgres;
  let app: INestMicroservice;

  beforeAll(async () => {
    db = await createTestDatabase();
    const first = await startServer(db.url, [SlowController], { group: 'jobs' });
    await first.app.close();
    client = await startClient(db.url);
  });

  afterEach(async () => {
    await app?.close();
    handled.length = 0;
    await query(db.url, 'DELETE FROM nestjs_transport.messages');
  });

  afterAll(async () => {
    await client.close();
    await db.drop();
  });

  async function backlog(count: number): Promise<void> {
    await Promise.all(
      Array.from({ length: count }, (_, i) => lastValueFrom(client.emit('job', { n: i + 1 }))),
    );
  }

  /** Emits a row that sorts before everything claimed so far, as a late commit's row would. */
  async function emitBehindTheCursor(): Promise<void> {
    await lastValueFrom(client.emit('job', { n: 0 }));
    await query(
      db.url,
      `UPDATE nestjs_transport.messages SET run_at = now() - interval '1 hour'
       WHERE payload::text LIKE '%"n":0}%'`,
    );
  }

  it('still reaches a row behind the cursor within a sweep interval during a backlog', async () => {
    await backlog(600);
    ({ app } = await startServer(db.url, [SlowController], {
      group: 'jobs',
      concurrency: 1,
      batchSize: 5,
      sweepIntervalMs: 200,
    }));
    await waitFor(() => handled.length >= 50);
    await emitBehindTheCursor();
    await waitFor(() => handled.includes(0), { timeoutMs: 10_000 });
    // Handled while the backlog still runs: by a full claim, not after the cursor ran out.
    expect(handled.length).toBeLessThan(500);
    await waitFor(() => handled.length === 601, { timeoutMs: 30_000 });
    expect(new Set(handled).size).toBe(601);
  });

  it('reaches a row behind the cursor as soon as the backlog ends, not at the next sweep', async () => {
    await backlog(120);
    ({ app } = await startServer(db.url, [SlowController], {
      group: 'jobs',
      concurrency: 1,
      batchSize: 5,
      sweepIntervalMs: 60_000,
    }));
    await waitFor(() => handled.length >= 20);
    await emitBehindTheCursor();
    // The resumed claim that comes back short is topped up from the beginning at once.
    await waitFor(() => handled.length === 121, { timeoutMs: 5_000 });
    expect(new Set(handled).size).toBe(121);
  });
});
