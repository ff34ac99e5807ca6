import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
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

  afterAll(async () => {
    await app?.close();
    await client.close();
    await db.drop();
  });

  it('still reaches a row behind the cursor within a sweep interval during a backlog', async () => {
    await Promise.all(
      Array.from({ length: 600 }, (_, i) => lastValueFrom(client.emit('job', { n: i + 1 }))),
    );
    ({ app } = await startServer(db.url, [SlowController], {
      group: 'jobs',
      concurrency: 1,
      batchSize: 5,
      sweepIntervalMs: 200,
    }));
    await waitFor(() => handled.length >= 50);
    // A row that sorts before everything claimed so far, as one whose transaction committed late
    // (its run_at is its transaction's start) would.
    await lastValueFrom(client.emit('job', { n: 0 }));
    await query(
      db.url,
      `UPDATE nestjs_transport.messages SET run_at = now() - interval '1 hour'
       WHERE payload::text LIKE '%"n":0}%'`,
    );
    await waitFor(() => handled.includes(0), { timeoutMs: 10_000 });
    // Handled while the backlog still runs: by a full claim, not after the cursor ran out.
    expect(handled.length).toBeLessThan(500);
    await waitFor(() => handled.length === 601, { timeoutMs: 30_000 });
    expect(new Set(handled).size).toBe(601);
  });
});
