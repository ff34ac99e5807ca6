import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { PostgresTransport } from '../../lib/index.js';
import { RetentionJob } from '../../lib/retention/retention-job.js';
import type { RetentionOptions } from '../../lib/retention/retention.options.js';
import { RETENTION_LOCK_NAMESPACE } from '../../lib/sql/admin.queries.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { query } from '../helpers/transport.js';
import { sleep, waitFor } from '../helpers/wait-for.js';

const T = 'nestjs_transport.messages';
const HOUR = 3_600_000;

type Row = {
  label: string;
  kind?: 'event' | 'request' | 'reply';
  recipient?: string;
  /** Ages in minutes; null leaves the column NULL. */
  consumedMinAgo?: number;
  deadMinAgo?: number;
  createdMinAgo?: number;
  expiresMinAgo?: number;
};

async function insert(url: string, rows: Row[]): Promise<void> {
  await query(
    url,
    `INSERT INTO ${T} (recipient, pattern, kind, idempotency_key, payload, created_at,
                       consumed_at, dead_at, expires_at)
     SELECT coalesce(r.recipient, 'orders'), 'p', coalesce(r.kind, 'event'), r.label, '{}',
            now() - coalesce(r.created, 0) * interval '1 minute',
            now() - r.consumed * interval '1 minute',
            now() - r.dead * interval '1 minute',
            now() - r.expires * interval '1 minute'
     FROM json_to_recordset($1::json) AS r(label text, kind text, recipient text,
       consumed int, dead int, created int, expires int)`,
    [
      JSON.stringify(
        rows.map((row) => ({
          label: row.label,
          kind: row.kind,
          recipient: row.recipient,
          consumed: row.consumedMinAgo,
          dead: row.deadMinAgo,
          created: row.createdMinAgo,
          expires: row.expiresMinAgo,
        })),
      ),
    ],
  );
}

const labels = async (url: string) =>
  (await query(url, `SELECT idempotency_key AS label FROM ${T} ORDER BY idempotency_key`)).map(
    (row) => row.label as string,
  );

describe('RetentionJob', () => {
  let db: TestDatabase;
  let transport: PostgresTransport;
  const jobs: RetentionJob[] = [];

  const job = (options: RetentionOptions) => {
    const made = new RetentionJob(transport, { enabled: false, ...options });
    jobs.push(made);
    return made;
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    transport = new PostgresTransport({ connectionString: db.url });
    await transport.onModuleInit();
  });

  afterAll(async () => {
    for (const made of jobs) await made.close();
    await transport?.onApplicationShutdown();
    await db?.drop();
  });

  it('deletes only what is older than the window: pending, dead and recent rows stay', async () => {
    await query(db.url, `DELETE FROM ${T}`);
    await insert(db.url, [
      ...Array.from({ length: 5 }, (_, i) => ({ label: `consumed-old-${i}`, consumedMinAgo: 120 })),
      { label: 'consumed-recent', consumedMinAgo: 30 },
      { label: 'pending-old', createdMinAgo: 600 },
      { label: 'dead-old', deadMinAgo: 600 },
      { label: 'reply-unread-old', kind: 'reply', recipient: 'reply:x', createdMinAgo: 120 },
      { label: 'reply-unread-recent', kind: 'reply', recipient: 'reply:x', createdMinAgo: 30 },
      { label: 'request-expired-old', kind: 'request', createdMinAgo: 130, expiresMinAgo: 120 },
      { label: 'request-expired-recent', kind: 'request', createdMinAgo: 40, expiresMinAgo: 30 },
      { label: 'request-waiting', kind: 'request', createdMinAgo: 600, expiresMinAgo: -5 },
    ]);
    // batchSize 2: the five old consumed rows take three batches.
    expect(await job({ retentionMs: HOUR, batchSize: 2 }).runOnce()).toBe(7);
    expect(await labels(db.url)).toEqual([
      'consumed-recent',
      'dead-old',
      'pending-old',
      'reply-unread-recent',
      'request-expired-recent',
      'request-waiting',
    ]);
  });

  it('deletes dead letters only with deadLetterRetentionMs, and by their own window', async () => {
    await query(db.url, `DELETE FROM ${T}`);
    await insert(db.url, [
      { label: 'dead-old', deadMinAgo: 600 },
      { label: 'dead-recent', deadMinAgo: 10 },
    ]);
    expect(await job({ retentionMs: HOUR }).runOnce()).toBe(0);
    expect(await job({ retentionMs: HOUR, deadLetterRetentionMs: HOUR }).runOnce()).toBe(1);
    expect(await labels(db.url)).toEqual(['dead-recent']);
  });

  it('skips its pass while another process holds the lock; replicas never double-delete', async () => {
    await query(db.url, `DELETE FROM ${T}`);
    await insert(
      db.url,
      Array.from({ length: 500 }, (_, i) => ({ label: `c-${i}`, consumedMinAgo: 120 })),
    );
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [
        RETENTION_LOCK_NAMESPACE,
        'nestjs_transport',
      ]);
      expect(await job({ retentionMs: HOUR }).runOnce()).toBe(0);
      expect(await labels(db.url)).toHaveLength(500);
    } finally {
      await other.query('ROLLBACK');
      await other.end();
    }
    // Ten replicas at once: the lock lets one delete at a time; together they delete each row once.
    const replicas = Array.from({ length: 10 }, () => job({ retentionMs: HOUR, batchSize: 20 }));
    const counts = await Promise.all(replicas.map((replica) => replica.runOnce()));
    const leftover = await job({ retentionMs: HOUR, batchSize: 20 }).runOnce();
    expect(counts.reduce((a, b) => a + b, 0) + leftover).toBe(500);
    expect(counts.filter((count) => count > 0).length).toBeLessThan(10);
    expect(await labels(db.url)).toEqual([]);
  });

  it('runs on its unref()ed timer from bootstrap and stops on shutdown', async () => {
    await query(db.url, `DELETE FROM ${T}`);
    const timed = new RetentionJob(transport, { retentionMs: HOUR, intervalMs: 50 });
    jobs.push(timed);
    timed.onApplicationBootstrap();
    await insert(db.url, [{ label: 'old', consumedMinAgo: 120 }]);
    await waitFor(async () => (await labels(db.url)).length === 0, { message: 'timed pass' });
    await timed.beforeApplicationShutdown();
    await insert(db.url, [{ label: 'after-close', consumedMinAgo: 120 }]);
    await sleep(200);
    expect(await labels(db.url)).toEqual(['after-close']);
    expect(await timed.runOnce()).toBe(0);
    // A job that is not enabled never starts a timer.
    const manual = job({ retentionMs: HOUR, intervalMs: 50 });
    manual.onApplicationBootstrap();
    await sleep(200);
    expect(await labels(db.url)).toEqual(['after-close']);
  });
});
