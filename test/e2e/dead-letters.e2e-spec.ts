import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, Module, type INestApplication, type Type } from '@nestjs/common';
import { EventPattern, Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { lastValueFrom } from 'rxjs';
import { DEAD_LETTER_ADMIN_OPTIONS } from '../../lib/admin/dead-letter-admin.options.js';
import { DeadLetterAdmin } from '../../lib/admin/dead-letter-admin.js';
import { InvalidArgumentError } from '../../lib/admin/invalid-argument.error.js';
import {
  POSTGRES_TRANSPORT,
  PostgresTransport,
  PostgresTransportModule,
  type ClientPostgres,
} from '../../lib/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { query } from '../helpers/transport.js';
import { sleep, waitFor } from '../helpers/wait-for.js';

const state = { working: false, handled: [] as string[], calls: 0 };

@Controller()
class InvoiceController {
  @EventPattern<string>('invoice.issue', POSTGRES_TRANSPORT)
  issue(@Payload() invoice: { id: string }) {
    state.calls += 1;
    if (!state.working) throw new Error(`tax service unavailable for ${invoice.id}`);
    state.handled.push(invoice.id);
  }
}

function appModule(url: string): Type {
  @Module({
    imports: [PostgresTransportModule.forRoot({ connectionString: url })],
    controllers: [InvoiceController],
    providers: [
      DeadLetterAdmin,
      { provide: DEAD_LETTER_ADMIN_OPTIONS, useValue: { batchSize: 3 } },
    ],
  })
  class AppModule {}
  return AppModule;
}

const T = 'nestjs_transport.messages';

/** Inserts rows by hand: `dead`, `pending` or `consumed`, for `recipient`. */
async function insert(
  url: string,
  rows: { recipient: string; pattern?: string; state: 'dead' | 'pending' | 'consumed' }[],
): Promise<string[]> {
  const ids: string[] = [];
  for (const row of rows) {
    const [{ id }] = await query(
      url,
      `INSERT INTO ${T} (recipient, pattern, kind, idempotency_key, payload, attempts,
                         dead_at, consumed_at, last_error)
       VALUES ($1, $2, 'event', gen_random_uuid()::text, '{"pattern":"p","data":{}}', 5,
               CASE WHEN $3 = 'dead' THEN now() END, CASE WHEN $3 = 'consumed' THEN now() END,
               CASE WHEN $3 = 'dead' THEN 'Error: old failure' END)
       RETURNING id::text AS id`,
      [row.recipient, row.pattern ?? 'report.build', row.state],
    );
    ids.push(id);
  }
  return ids;
}

describe('DeadLetterAdmin', () => {
  let db: TestDatabase;
  let app: INestApplication;
  let admin: DeadLetterAdmin;
  let client: ClientPostgres;

  beforeAll(async () => {
    db = await createTestDatabase();
    const moduleRef = await Test.createTestingModule({ imports: [appModule(db.url)] }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    const transport = app.get(PostgresTransport);
    // A sweep far in the future: a requeued message is picked up only if its wake-up arrives.
    app.connectMicroservice({
      strategy: transport.createServer({
        group: 'billing',
        maxAttempts: 2,
        retryDelayMs: 10,
        maxRetryDelayMs: 20,
        sweepIntervalMs: 60_000,
      }),
    });
    await app.startAllMicroservices();
    await app.init();
    admin = app.get(DeadLetterAdmin);
    client = transport.createClient();
    await client.connect();
  });

  afterAll(async () => {
    await client?.close();
    await app?.close();
    await db?.drop();
  });

  const rowOf = async (id: string) =>
    (await query(db.url, `SELECT * FROM ${T} WHERE id = $1`, [id]))[0];

  it('lists and inspects a dead letter, requeues it once fixed, and it is handled once', async () => {
    await lastValueFrom(client.emit('invoice.issue', { id: 'inv-1' }));
    const page = await waitFor(
      async () => {
        const listed = await admin.list({ group: 'billing' });
        return listed.items.length > 0 ? listed : undefined;
      },
      { message: 'a dead letter' },
    );
    expect(page).toEqual({
      items: [
        {
          id: expect.stringMatching(/^\d+$/),
          group: 'billing',
          pattern: 'invoice.issue',
          kind: 'event',
          attempts: 2,
          createdAt: expect.any(Date),
          deadAt: expect.any(Date),
          // Whatever Nest's exception filter made of the error.
          lastError: expect.any(String),
        },
      ],
    });
    const { id, lastError } = page.items[0]!;
    const letter = await admin.inspect(id);
    expect(letter).toMatchObject({
      id,
      attempts: 2,
      lastError,
      payload: { pattern: 'invoice.issue', data: { id: 'inv-1' } },
      replyTo: null,
      expiresAt: null,
    });
    expect(state.calls).toBe(2);

    state.working = true;
    expect(await admin.requeue(id)).toBe(1);
    await waitFor(() => state.handled.includes('inv-1'), { message: 'handled after requeue' });
    await waitFor(async () => (await rowOf(id)).consumed_at !== null, { message: 'consumed' });
    await sleep(200);
    expect(state.handled).toEqual(['inv-1']);
    const row = await rowOf(id);
    expect(row).toMatchObject({ attempts: 1, dead_at: null });
    // The failure that killed it stays as history.
    expect(row.last_error).toBe(lastError);
    // Neither a consumed message nor an unknown id can be requeued, inspected or purged.
    expect(await admin.requeue(id)).toBe(0);
    expect(await admin.inspect(id)).toBeUndefined();
    expect(await admin.purge(id)).toBe(0);
    expect(await admin.requeue('999999999')).toBe(0);
  });

  it('purges a dead letter, and only dead letters', async () => {
    state.working = false;
    await lastValueFrom(client.emit('invoice.issue', { id: 'inv-2' }));
    const [dead] = await waitFor(async () => {
      const { items } = await admin.list({ pattern: 'invoice.issue' });
      return items.length > 0 ? items : undefined;
    });
    const [pending] = await insert(db.url, [{ recipient: 'reports', state: 'pending' }]);
    expect(await admin.purge(pending!)).toBe(0);
    expect(await admin.purge(dead!.id)).toBe(1);
    expect(await rowOf(dead!.id)).toBeUndefined();
    expect(await rowOf(pending!)).toBeDefined();
    expect(await admin.purge(BigInt(dead!.id))).toBe(0);
  });

  it('pages newest first by id, with filters', async () => {
    await query(db.url, `DELETE FROM ${T}`);
    const ids = await insert(
      db.url,
      Array.from({ length: 5 }, (_, i) => ({
        recipient: i < 4 ? 'reports' : 'audit',
        pattern: i % 2 === 0 ? 'report.build' : 'report.mail',
        state: 'dead' as const,
      })),
    );
    const first = await admin.list({ group: 'reports', limit: 3 });
    expect(first.items.map((item) => item.id)).toEqual([ids[3], ids[2], ids[1]]);
    expect(first.nextBefore).toBe(ids[1]);
    const second = await admin.list({ group: 'reports', limit: 3, before: first.nextBefore });
    expect(second).toEqual({ items: [expect.objectContaining({ id: ids[0] })] });
    expect((await admin.list({ pattern: 'report.mail' })).items.map((item) => item.id)).toEqual([
      ids[3],
      ids[1],
    ]);
    expect((await admin.list({ group: 'audit', pattern: 'report.build' })).items).toHaveLength(1);
    expect((await admin.list()).items).toHaveLength(5);
  });

  it('requeues and purges in bounded batches by group and pattern, never pending or consumed rows', async () => {
    await query(db.url, `DELETE FROM ${T}`);
    // 7 dead for reports (batchSize is 3, so three batches), 2 dead for audit, others alive.
    await insert(db.url, [
      ...Array.from({ length: 7 }, () => ({ recipient: 'reports', state: 'dead' as const })),
      ...Array.from({ length: 2 }, () => ({ recipient: 'audit', state: 'dead' as const })),
      { recipient: 'reports', state: 'pending' },
      { recipient: 'reports', state: 'consumed' },
    ]);
    expect(await admin.requeueAll({ group: 'reports', pattern: 'report.build' })).toBe(7);
    const requeued = await query(
      db.url,
      `SELECT attempts, run_at <= now() AS due, last_error FROM ${T}
       WHERE recipient = 'reports' AND consumed_at IS NULL AND dead_at IS NULL`,
    );
    expect(requeued).toHaveLength(8);
    expect(requeued.filter((row) => row.attempts === 0 && row.due)).toHaveLength(7);
    expect(await admin.requeueAll({ group: 'reports' })).toBe(0);

    await query(
      db.url,
      `UPDATE ${T} SET dead_at = now() WHERE recipient = 'reports' AND attempts = 0`,
    );
    expect(await admin.purgeAll({ group: 'reports' })).toBe(7);
    expect(await admin.purgeAll({ group: 'reports' })).toBe(0);
    const left = await query(
      db.url,
      `SELECT recipient, dead_at IS NOT NULL AS dead, consumed_at IS NOT NULL AS consumed
       FROM ${T} ORDER BY id`,
    );
    expect(left).toEqual([
      { recipient: 'audit', dead: true, consumed: false },
      { recipient: 'audit', dead: true, consumed: false },
      { recipient: 'reports', dead: false, consumed: false },
      { recipient: 'reports', dead: false, consumed: true },
    ]);
    expect(await admin.purgeAll({})).toBe(2);
  });

  it('rejects bad arguments with a typed error before touching the database', async () => {
    for (const call of [
      () => admin.requeue('12; DROP TABLE x'),
      () => admin.inspect(-1),
      () => admin.purge(1.5),
      () => admin.list({ limit: 1_001 }),
      () => admin.list({ before: 'abc' }),
      () => admin.requeueAll({ group: '' }),
      () => admin.purgeAll({ pattern: 7 as never }),
    ]) {
      await expect(call()).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    await expect(admin.list({ limit: 0 })).rejects.toThrow(
      'Invalid argument "limit": expected an integer from 1 to 1000, got 0',
    );
  });
});
