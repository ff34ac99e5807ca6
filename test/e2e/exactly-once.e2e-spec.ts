import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, type INestMicroservice } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import {
  ClientPostgres,
  POSTGRES_TRANSPORT,
  PostgresContext,
  PostgresExceptionFilter,
  PostgresRecord,
  type DeadLetterEvent,
} from '../../lib/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { query, startClient, startServer } from '../helpers/transport.js';
import { waitFor } from '../helpers/wait-for.js';

const attemptsSeen = new Map<string, number[]>();

@Controller()
class LedgerController {
  /** Writes one business row in the consume transaction. */
  @EventPattern<string>('ledger.entry', POSTGRES_TRANSPORT)
  async entry(@Payload() entry: { key: string }, @Ctx() ctx: PostgresContext) {
    await ctx.query('INSERT INTO ledger (key, message_id) VALUES ($1, $2)', [
      entry.key,
      ctx.getMessageId(),
    ]);
  }

  /** Fails twice, then succeeds; its failed writes must not survive. */
  @EventPattern<string>('flaky', POSTGRES_TRANSPORT)
  async flaky(@Payload() body: { key: string }, @Ctx() ctx: PostgresContext) {
    attemptsSeen.set(body.key, [...(attemptsSeen.get(body.key) ?? []), ctx.getAttempt()]);
    await ctx.query('INSERT INTO ledger (key, message_id) VALUES ($1, $2)', [
      body.key,
      ctx.getMessageId(),
    ]);
    if (ctx.getAttempt() < 3) throw new Error(`flaky failure ${ctx.getAttempt()}`);
  }

  /** Swallows a failed statement on its first attempt, which leaves the transaction aborted. */
  @EventPattern<string>('swallows', POSTGRES_TRANSPORT)
  async swallows(@Payload() body: { key: string }, @Ctx() ctx: PostgresContext) {
    attemptsSeen.set(body.key, [...(attemptsSeen.get(body.key) ?? []), ctx.getAttempt()]);
    await ctx.query('INSERT INTO ledger (key, message_id) VALUES ($1, $2)', [
      body.key,
      ctx.getMessageId(),
    ]);
    if (ctx.getAttempt() === 1) await ctx.query('SELECT 1 / 0').catch(() => undefined);
  }

  @EventPattern<string>('always.fails', POSTGRES_TRANSPORT)
  async fails(@Ctx() ctx: PostgresContext) {
    await ctx.query("INSERT INTO ledger (key, message_id) VALUES ('never', $1)", [
      ctx.getMessageId(),
    ]);
    throw new Error('payment provider rejected the card');
  }
}

describe('exactly-once send and consume', () => {
  let db: TestDatabase;
  let client: ClientPostgres;
  const apps: INestMicroservice[] = [];
  const deadLetters: DeadLetterEvent[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    await query(db.url, 'CREATE TABLE ledger (key text NOT NULL, message_id text NOT NULL)');
    for (let i = 0; i < 4; i++) {
      const { app, server } = await startServer(
        db.url,
        [LedgerController],
        { group: 'ledger', concurrency: 2, retryDelayMs: 20, maxRetryDelayMs: 50, maxAttempts: 3 },
        [],
        (microservice) => microservice.useGlobalFilters(new PostgresExceptionFilter()),
      );
      server.on('deadLetter', (event) => deadLetters.push(event));
      apps.push(app);
    }
    client = await startClient(db.url);
  });

  afterAll(async () => {
    await client.close();
    for (const app of apps) await app.close();
    await db.drop();
  });

  it('handles 5,000 messages across 4 instances exactly once', async () => {
    const count = 5_000;
    const emitters = 10;
    await Promise.all(
      Array.from({ length: emitters }, async (_, e) => {
        for (let i = e; i < count; i += emitters) {
          await lastValueFrom(client.emit('ledger.entry', { key: `entry-${i}` }));
        }
      }),
    );
    const [{ n }] = await waitFor(
      async () => {
        const rows = await query(
          db.url,
          "SELECT count(*)::int AS n FROM ledger WHERE key LIKE 'entry-%'",
        );
        return rows[0].n >= count ? rows : undefined;
      },
      { timeoutMs: 60_000, message: '5,000 ledger rows' },
    );
    expect(n).toBe(count);
    const [{ distinct }] = await query(
      db.url,
      "SELECT count(DISTINCT key)::int AS distinct FROM ledger WHERE key LIKE 'entry-%'",
    );
    expect(distinct).toBe(count);
    const [{ pending }] = await query(
      db.url,
      "SELECT count(*)::int AS pending FROM nestjs_transport.messages WHERE consumed_at IS NULL AND pattern = 'ledger.entry'",
    );
    expect(pending).toBe(0);
  });

  it('stores one row for concurrent duplicate emits with one key', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        lastValueFrom(
          client.emit(
            'ledger.entry',
            new PostgresRecord({ key: 'dup' }, { idempotencyKey: 'order-42' }),
          ),
        ),
      ),
    );
    expect(results.filter((r) => r.recipients.length === 1)).toHaveLength(1);
    await waitFor(
      async () => (await query(db.url, "SELECT 1 FROM ledger WHERE key = 'dup'")).length > 0,
    );
    // A later duplicate is still a no-op, not an error.
    const again = await lastValueFrom(
      client.emit(
        'ledger.entry',
        new PostgresRecord({ key: 'dup' }, { idempotencyKey: 'order-42' }),
      ),
    );
    expect(again).toEqual({ recipients: [] });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const rows = await query(db.url, "SELECT * FROM ledger WHERE key = 'dup'");
    expect(rows).toHaveLength(1);
  });

  it('retries a failing handler with its writes rolled back, and counts attempts', async () => {
    await lastValueFrom(client.emit('flaky', { key: 'flaky-1' }));
    await waitFor(
      async () => (await query(db.url, "SELECT 1 FROM ledger WHERE key = 'flaky-1'")).length > 0,
    );
    expect(attemptsSeen.get('flaky-1')).toEqual([1, 2, 3]);
    const rows = await query(db.url, "SELECT * FROM ledger WHERE key = 'flaky-1'");
    expect(rows).toHaveLength(1);
    const [message] = await query(
      db.url,
      "SELECT attempts, consumed_at IS NOT NULL AS consumed, last_error FROM nestjs_transport.messages WHERE pattern = 'flaky'",
    );
    expect(message).toMatchObject({ attempts: 3, consumed: true });
  });

  it('fails a handler that swallowed a failed statement, and keeps the rest of its batch', async () => {
    await Promise.all(
      ['ok-1', 'bad', 'ok-2'].map((key) =>
        lastValueFrom(client.emit(key === 'bad' ? 'swallows' : 'ledger.entry', { key })),
      ),
    );
    await waitFor(
      async () => (await query(db.url, "SELECT 1 FROM ledger WHERE key = 'bad'")).length > 0,
      { message: 'the swallowing handler to succeed on a retry' },
    );
    expect(attemptsSeen.get('bad')).toEqual([1, 2]);
    const rows = await query(
      db.url,
      "SELECT key FROM ledger WHERE key IN ('ok-1', 'bad', 'ok-2') ORDER BY key",
    );
    expect(rows.map((r) => r.key)).toEqual(['bad', 'ok-1', 'ok-2']);
    const [message] = await query(
      db.url,
      "SELECT attempts, last_error FROM nestjs_transport.messages WHERE pattern = 'swallows'",
    );
    expect(message.attempts).toBe(2);
    expect(message.last_error).toMatch(/transaction aborted/);
  });

  it('dead-letters a message after maxAttempts and keeps its last error', async () => {
    await lastValueFrom(client.emit('always.fails', { key: 'x' }));
    const [row] = await waitFor(
      async () => {
        const rows = await query(
          db.url,
          "SELECT * FROM nestjs_transport.messages WHERE pattern = 'always.fails' AND dead_at IS NOT NULL",
        );
        return rows.length > 0 ? rows : undefined;
      },
      { message: 'a dead letter' },
    );
    expect(row.attempts).toBe(3);
    expect(row.consumed_at).toBeNull();
    expect(row.last_error).toContain('payment provider rejected the card');
    // The event follows the commit's answer, which can reach this process after the row is
    // visible to the query above.
    await waitFor(() => deadLetters.length > 0, { message: 'the deadLetter event' });
    expect(deadLetters).toEqual([
      expect.objectContaining({ pattern: 'always.fails', group: 'ledger', attempts: 3 }),
    ]);
    expect(await query(db.url, "SELECT * FROM ledger WHERE key = 'never'")).toEqual([]);
  });
});
