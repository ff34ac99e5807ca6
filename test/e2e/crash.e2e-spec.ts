import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lastValueFrom } from 'rxjs';
import { POSTGRES_TRANSPORT, PostgresContext } from '../../lib/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { query, startClient, startServer } from '../helpers/transport.js';
import { waitFor } from '../helpers/wait-for.js';

@Controller()
class SurvivorController {
  @EventPattern<string>('job', POSTGRES_TRANSPORT)
  async run(@Payload() job: { key: string }, @Ctx() ctx: PostgresContext) {
    await ctx.query('INSERT INTO job_runs (key, attempt, pid) VALUES ($1, $2, $3)', [
      job.key,
      ctx.getAttempt(),
      process.pid,
    ]);
  }
}

let slowJobStarts = 0;

@Controller()
class SlowJobController {
  /** Outlives a 300 ms lease, so a second instance claims the message while it runs. */
  @EventPattern<string>('slow-job', POSTGRES_TRANSPORT)
  async run(@Payload() job: { key: string }, @Ctx() ctx: PostgresContext) {
    slowJobStarts++;
    await ctx.query('INSERT INTO job_runs (key, attempt, pid) VALUES ($1, $2, $3)', [
      job.key,
      ctx.getAttempt(),
      process.pid,
    ]);
    await new Promise((resolve) => setTimeout(resolve, 800));
  }
}

function startWorker(url: string): Promise<{ child: ChildProcess; started: Promise<unknown> }> {
  const child = fork('test/fixtures/crash-worker.mjs', [], {
    env: { ...process.env, DATABASE_URL: url, LEASE_MS: '1000' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let onStarted: (value: unknown) => void;
  const started = new Promise((resolve) => (onStarted = resolve));
  return new Promise((resolve, reject) => {
    child.on('message', (message: any) => {
      if (message.ready) resolve({ child, started });
      if (message.started) onStarted(message);
    });
    child.once('exit', (code) => reject(new Error(`worker exited early with ${code}`)));
  });
}

describe('a worker killed mid-handler', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    if (!existsSync('dist/lib/index.js')) {
      throw new Error('dist/lib/index.js is missing: run `npm run build` (npm test does)');
    }
    db = await createTestDatabase();
    await query(db.url, 'CREATE SCHEMA IF NOT EXISTS nestjs_transport');
    await query(db.url, 'CREATE TABLE job_runs (key text, attempt int, pid int)');
  });

  afterAll(async () => {
    await db.drop();
  });

  it('has its message redelivered and handled exactly once', async () => {
    const { child, started } = await startWorker(db.url);
    const client = await startClient(db.url);
    await lastValueFrom(client.emit('job', { key: 'k1' }));
    expect(await started).toEqual({ started: 'k1', attempt: 1 });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;

    const { app } = await startServer(db.url, [SurvivorController], {
      group: 'jobs',
      sweepIntervalMs: 100,
    });
    const [run] = await waitFor(async () => {
      const rows = await query(db.url, 'SELECT key, attempt, pid FROM job_runs');
      return rows.length ? rows : undefined;
    });
    // The killed worker's write rolled back with its transaction; the survivor ran attempt 2.
    expect(run).toEqual({ key: 'k1', attempt: 2, pid: process.pid });
    const [message] = await query(
      db.url,
      "SELECT attempts, consumed_at IS NOT NULL AS consumed FROM nestjs_transport.messages WHERE pattern = 'job'",
    );
    expect(message).toEqual({ attempts: 2, consumed: true });
    expect(await query(db.url, 'SELECT count(*)::int AS n FROM job_runs')).toEqual([{ n: 1 }]);
    await client.close();
    await app.close();
  });

  it('keeps a message consumed once when its lease runs out mid-handler and another instance takes it', async () => {
    await query(db.url, 'TRUNCATE job_runs');
    const slow = await startServer(db.url, [SlowJobController], {
      group: 'slow-jobs',
      leaseMs: 300,
      sweepIntervalMs: 100,
    });
    const fast = await startServer(db.url, [SlowJobController], {
      group: 'slow-jobs',
      leaseMs: 300,
      sweepIntervalMs: 100,
    });
    const client = await startClient(db.url);
    await lastValueFrom(client.emit('slow-job', { key: 'lease' }));
    // Both instances run it: the second claims it once the first one's lease ran out.
    await waitFor(() => slowJobStarts >= 2, {
      timeoutMs: 10_000,
      message: 'two attempts to start',
    });
    await waitFor(
      async () =>
        (
          await query(
            db.url,
            "SELECT 1 FROM nestjs_transport.messages WHERE pattern = 'slow-job' AND consumed_at IS NOT NULL",
          )
        ).length === 1,
      { timeoutMs: 10_000, message: 'the message consumed' },
    );
    await client.close();
    await slow.app.close();
    await fast.app.close();
    // Whichever committed first won; the other rolled back its write with its whole batch.
    expect(await query(db.url, "SELECT key FROM job_runs WHERE key = 'lease'")).toEqual([
      { key: 'lease' },
    ]);
  });
});
