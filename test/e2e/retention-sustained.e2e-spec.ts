import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, Module, type INestApplication, type Type } from '@nestjs/common';
import { EventPattern, Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { lastValueFrom } from 'rxjs';
import {
  POSTGRES_TRANSPORT,
  PostgresTransport,
  PostgresTransportModule,
  type ClientPostgres,
} from '../../lib/index.js';
import { RetentionJob } from '../../lib/retention/retention-job.js';
import { POSTGRES_RETENTION_OPTIONS } from '../../lib/retention/retention.options.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { query } from '../helpers/transport.js';
import { sleep, waitFor } from '../helpers/wait-for.js';

// RETENTION_RUN_MS=20000 RETENTION_REPORT=1 runs it longer and prints the measurements.
const RUN_MS = Number(process.env.RETENTION_RUN_MS ?? 5_000);
/** Messages per second: a pace the consumer sustains, so only retention decides the row count. */
const RATE = 600;
const RETENTION = { retentionMs: 500, intervalMs: 200, batchSize: 1_000 };

const handled = new Set<number>();
let duplicates = 0;

@Controller()
class SinkController {
  @EventPattern<string>('tick', POSTGRES_TRANSPORT)
  tick(@Payload() { n }: { n: number }) {
    if (handled.has(n)) duplicates += 1;
    handled.add(n);
  }
}

function appModule(url: string): Type {
  @Module({
    imports: [PostgresTransportModule.forRoot({ connectionString: url })],
    controllers: [SinkController],
    providers: [RetentionJob, { provide: POSTGRES_RETENTION_OPTIONS, useValue: RETENTION }],
  })
  class AppModule {}
  return AppModule;
}

interface Sample {
  at: number;
  total: number;
  consumed: number;
}

describe('RetentionJob under sustained traffic', () => {
  let db: TestDatabase;
  let app: INestApplication;
  let client: ClientPostgres;

  beforeAll(async () => {
    db = await createTestDatabase();
    const moduleRef = await Test.createTestingModule({ imports: [appModule(db.url)] }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    const transport = app.get(PostgresTransport);
    app.connectMicroservice({
      strategy: transport.createServer({ group: 'sink', concurrency: 4, batchSize: 50 }),
    });
    await app.startAllMicroservices();
    await app.init();
    client = transport.createClient();
    await client.connect();
  });

  afterAll(async () => {
    await client?.close();
    await app?.close();
    await db?.drop();
  });

  it('keeps the table bounded while messages flow, and empty of consumed rows after', async () => {
    const samples: Sample[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [row] = await query(
          db.url,
          `SELECT count(*)::int AS total, count(consumed_at)::int AS consumed
           FROM nestjs_transport.messages`,
        );
        samples.push({ at: Date.now(), total: row.total, consumed: row.consumed });
        await sleep(100);
      }
    })();

    const started = Date.now();
    let next = 0;
    while (Date.now() - started < RUN_MS) {
      const due = Math.floor(((Date.now() - started) / 1_000) * RATE);
      const batch: Promise<unknown>[] = [];
      while (next < due) batch.push(lastValueFrom(client.emit('tick', { n: next++ })));
      await Promise.all(batch);
      await sleep(10);
    }
    const emitted = next;
    const elapsed = Date.now() - started;
    await waitFor(() => handled.size === emitted, {
      message: 'every tick handled',
      timeoutMs: 30_000,
    });
    const drainedAt = Date.now();
    // One window plus two passes later, nothing consumed is left.
    await waitFor(
      async () =>
        (await query(db.url, 'SELECT count(*)::int AS n FROM nestjs_transport.messages'))[0].n ===
        0,
      { message: 'table emptied by retention', timeoutMs: 10_000 },
    );
    const emptiedAfterMs = Date.now() - drainedAt;
    sampling = false;
    await sampler;

    const during = samples.filter((sample) => sample.at <= started + elapsed);
    const peak = Math.max(...during.map((sample) => sample.total));
    const peakConsumed = Math.max(...during.map((sample) => sample.consumed));
    const firstHalf = during.filter((sample) => sample.at < started + elapsed / 2);
    const secondHalf = during.filter((sample) => sample.at >= started + elapsed / 2);
    const peakOf = (part: Sample[]) => Math.max(...part.map((sample) => sample.total));
    const rate = Math.round((emitted / elapsed) * 1_000);
    if (process.env.RETENTION_REPORT) {
      console.log(
        JSON.stringify({
          emitted,
          elapsedMs: elapsed,
          ratePerSecond: rate,
          retention: RETENTION,
          peakRows: peak,
          peakConsumedRows: peakConsumed,
          peakFirstHalf: peakOf(firstHalf),
          peakSecondHalf: peakOf(secondHalf),
          rowsAtEnd: during.at(-1)?.total,
          emptiedAfterMs,
          samples: during.length,
        }),
      );
    }

    expect(duplicates).toBe(0);
    expect(emitted).toBeGreaterThan(500);
    // Without retention the table would end up holding every message. With it, consumed rows
    // stay around one window plus one interval of traffic, however long the run; the total adds
    // only what is in flight.
    const steadyState = (rate * (RETENTION.retentionMs + RETENTION.intervalMs)) / 1_000;
    expect(peakConsumed).toBeLessThan(steadyState * 3);
    expect(peak).toBeLessThan(emitted * 0.4);
  });
});
