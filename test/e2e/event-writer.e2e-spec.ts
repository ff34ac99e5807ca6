import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { lastValueFrom } from 'rxjs';
import {
  ClientClosingError,
  ClientPostgres,
  migrate,
  PostgresRecordBuilder,
} from '../../lib/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { query, startClient } from '../helpers/transport.js';

describe('emits outside a transaction: concurrent ones share statements', () => {
  let db: TestDatabase;
  let client: ClientPostgres;

  beforeAll(async () => {
    db = await createTestDatabase();
    await migrate(db.url);
    await query(
      db.url,
      `INSERT INTO nestjs_transport.subscriptions (pattern, kind, group_name)
       VALUES ('audit', 'event', 'billing'), ('audit', 'event', 'shipping')`,
    );
    client = await startClient(db.url);
  });

  afterAll(async () => {
    await client.close();
    await db.drop();
  });

  const emit = (data: unknown, key?: string) =>
    lastValueFrom(
      client.emit(
        'audit',
        key ? new PostgresRecordBuilder(data).setIdempotencyKey(key).build() : data,
      ),
    );

  it('writes 200 concurrent emits in fewer transactions, each to every group, once', async () => {
    const results = await Promise.all(Array.from({ length: 200 }, (_, n) => emit({ n })));
    for (const result of results) expect(result.recipients.sort()).toEqual(['billing', 'shipping']);
    const [row] = await query(
      db.url,
      `SELECT count(*)::int AS rows, count(DISTINCT payload::text)::int AS emits,
              count(DISTINCT xmin::text)::int AS transactions
       FROM nestjs_transport.messages WHERE payload::text LIKE '%"n":%'`,
    );
    expect(row.rows).toBe(400);
    expect(row.emits).toBe(200);
    // Rows written by one statement share its transaction id.
    expect(row.transactions).toBeLessThan(100);
  });

  it('sends the emits made in one turn of the event loop as one statement', async () => {
    // Nothing is in flight: the first emit waits for the others of its turn instead of going
    // alone, so the burst commits once.
    const results = await Promise.all(Array.from({ length: 5 }, (_, n) => emit({ turn: n })));
    for (const result of results) expect(result.recipients.sort()).toEqual(['billing', 'shipping']);
    const [row] = await query(
      db.url,
      `SELECT count(*)::int AS rows, count(DISTINCT xmin::text)::int AS transactions
       FROM nestjs_transport.messages WHERE payload::text LIKE '%"turn":%'`,
    );
    expect(row.rows).toBe(10);
    expect(row.transactions).toBe(1);
  });

  it('sends the emits made while a statement is in flight together in the next one', async () => {
    // A chain of emitters, each emitting again as soon as its emit is acknowledged: after the
    // first burst, every statement carries the emits its predecessor's commit released.
    const emitters = 8;
    const rounds = 5;
    await Promise.all(
      Array.from({ length: emitters }, async (_, e) => {
        for (let r = 0; r < rounds; r++) await emit({ chain: e * rounds + r });
      }),
    );
    const [row] = await query(
      db.url,
      `SELECT count(*)::int AS rows, count(DISTINCT xmin::text)::int AS transactions
       FROM nestjs_transport.messages WHERE payload::text LIKE '%"chain":%'`,
    );
    expect(row.rows).toBe(emitters * rounds * 2);
    expect(row.transactions).toBe(rounds);
  });

  it('inserts a key emitted twice at once only once, and tells the duplicate', async () => {
    const keys = Array.from({ length: 40 }, (_, n) => `order-${n % 20}`);
    const results = await Promise.all(keys.map((key, n) => emit({ key, n }, key)));
    // Two emits of one key race: exactly one of them inserts, the other is the duplicate.
    for (let n = 0; n < 20; n++) {
      const pair = [results[n], results[n + 20]].map((r) => r.recipients.sort());
      expect(pair).toContainEqual(['billing', 'shipping']);
      expect(pair).toContainEqual([]);
    }
    const rows = await query(
      db.url,
      `SELECT idempotency_key, count(*)::int AS n FROM nestjs_transport.messages
       WHERE idempotency_key LIKE 'order-%' GROUP BY 1`,
    );
    expect(rows).toHaveLength(20);
    for (const r of rows) expect(r.n).toBe(2);
  });

  it('fails only the emit the database rejects when it shared a statement', async () => {
    // A constraint of the user's own rejects one payload: the shared statement fails, and each
    // of its emits is retried alone.
    await query(
      db.url,
      `ALTER TABLE nestjs_transport.messages
       ADD CONSTRAINT no_poison CHECK (payload::text NOT LIKE '%poison%')`,
    );
    try {
      const outcomes = await Promise.allSettled(
        Array.from({ length: 30 }, (_, n) => emit(n === 17 ? { poison: true } : { batch: n })),
      );
      const rejected = outcomes.filter((o) => o.status === 'rejected');
      expect(rejected).toHaveLength(1);
      expect(String((rejected[0] as PromiseRejectedResult).reason)).toMatch(/no_poison/);
      expect(outcomes[17].status).toBe('rejected');
      const [row] = await query(
        db.url,
        `SELECT count(*)::int AS n FROM nestjs_transport.messages WHERE payload::text LIKE '%"batch":%'`,
      );
      expect(row.n).toBe(29 * 2);
    } finally {
      await query(db.url, 'ALTER TABLE nestjs_transport.messages DROP CONSTRAINT no_poison');
    }
  });

  it('waits on close for the emits already made', async () => {
    const closing = await startClient(db.url);
    const emits = Array.from({ length: 100 }, (_, n) =>
      lastValueFrom(closing.emit('audit', { closing: n })),
    );
    const closed = closing.close();
    // Made while closing: refused at once, with nothing written.
    await expect(lastValueFrom(closing.emit('audit', { late: true }))).rejects.toBeInstanceOf(
      ClientClosingError,
    );
    await closed;
    const results = await Promise.all(emits);
    for (const result of results) expect(result.recipients).toHaveLength(2);
    const [row] = await query(
      db.url,
      `SELECT count(*)::int AS n FROM nestjs_transport.messages WHERE payload::text LIKE '%"closing":%'`,
    );
    expect(row.n).toBe(200);
    const [late] = await query(
      db.url,
      `SELECT count(*)::int AS n FROM nestjs_transport.messages WHERE payload::text LIKE '%"late":%'`,
    );
    expect(late.n).toBe(0);
  });
});
