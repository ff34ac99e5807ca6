import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, type INestMicroservice } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { firstValueFrom, lastValueFrom } from 'rxjs';
import {
  ClientPostgres,
  InvalidOptionError,
  InvalidPatternError,
  PayloadError,
  PayloadTooLargeError,
  POSTGRES_TRANSPORT,
  PostgresContext,
  ServerPostgres,
} from '../../lib/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { query, startClient, startServer } from '../helpers/transport.js';
import { sleep, waitFor } from '../helpers/wait-for.js';

const HOSTILE = `order'); DROP TABLE messages; -- "é" 🚚`;
const received: Array<{ pattern: string; size: number }> = [];
const raw: unknown[] = [];

@Controller()
class InboxController {
  @EventPattern<string>(HOSTILE, POSTGRES_TRANSPORT)
  hostile(@Payload() body: { n: number }, @Ctx() ctx: PostgresContext) {
    received.push({ pattern: ctx.getPattern(), size: body.n });
  }

  @EventPattern<string>('blob', POSTGRES_TRANSPORT)
  blob(@Payload() body: { data: string }, @Ctx() ctx: PostgresContext) {
    received.push({ pattern: ctx.getPattern(), size: body.data.length });
  }

  @EventPattern<string>('raw', POSTGRES_TRANSPORT)
  raw(@Payload() data: unknown) {
    raw.push(data);
  }
}

async function messageCount(url: string): Promise<number> {
  const [row] = await query(url, 'SELECT count(*)::int AS n FROM nestjs_transport.messages');
  return row.n;
}

describe('bad input gets a clear error and loses nothing', () => {
  let db: TestDatabase;
  let client: ClientPostgres;
  let app: INestMicroservice;

  beforeAll(async () => {
    db = await createTestDatabase();
    ({ app } = await startServer(db.url, [InboxController], { group: 'inbox' }));
    client = await startClient(db.url, { maxPayloadBytes: 12 * 1024 * 1024 });
  });

  afterAll(async () => {
    await client.close();
    await app.close();
    await db.drop();
  });

  describe('invalid options fail start-up and name the option', () => {
    const url = 'postgres://u@127.0.0.1:1/db';
    it.each([
      [{ group: '' }, 'group'],
      [{ group: 'g', concurrency: 0 }, 'concurrency'],
      [{ group: 'g', batchSize: 1.5 }, 'batchSize'],
      [{ group: 'g', grop: 'typo' }, 'grop'],
      [{ group: 'g', schema: 'pg_bad' }, 'schema'],
      [{ group: 'g', retryDelayMs: 500, maxRetryDelayMs: 100 }, 'maxRetryDelayMs'],
    ])('ServerPostgres(%j)', (options, option) => {
      const create = () => new ServerPostgres({ connectionString: url, ...(options as any) });
      expect(create).toThrow(InvalidOptionError);
      expect(create).toThrow(`"${option}"`);
    });

    it('refuses a missing or unparsable connection without echoing it', () => {
      expect(() => new ClientPostgres({})).toThrow(/give one of connectionString, pool/);
      const secret = 'mysql://user:hunter2@host/db';
      const create = () => new ClientPostgres({ connectionString: secret });
      expect(create).toThrow(InvalidOptionError);
      expect(create).not.toThrow(/hunter2/);
    });
  });

  it('refuses a payload that cannot be serialized, writing nothing', async () => {
    const before = await messageCount(db.url);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    await expect(lastValueFrom(client.emit('blob', circular))).rejects.toBeInstanceOf(PayloadError);
    await expect(lastValueFrom(client.emit('blob', { n: 10n }))).rejects.toThrow(/BigInt/);
    await expect(firstValueFrom(client.send('blob', circular))).rejects.toBeInstanceOf(
      PayloadError,
    );
    expect(await messageCount(db.url)).toBe(before);
  });

  it('refuses an oversized payload against the documented limit', async () => {
    const before = await messageCount(db.url);
    const error = await lastValueFrom(
      client.emit('blob', { data: 'x'.repeat(13 * 1024 * 1024) }),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PayloadTooLargeError);
    expect((error as Error).message).toMatch(/over the 12582912-byte limit.*maxPayloadBytes/);
    expect(await messageCount(db.url)).toBe(before);
  });

  it('delivers a 10 MB payload within the limit', async () => {
    const size = 10 * 1024 * 1024;
    await lastValueFrom(client.emit('blob', { data: 'y'.repeat(size) }));
    await waitFor(() => received.find((r) => r.pattern === 'blob' && r.size === size), {
      message: 'the 10 MB event',
    });
  });

  it('stores and routes a hostile pattern name as data', async () => {
    await lastValueFrom(client.emit(HOSTILE, { n: 1 }));
    await waitFor(() => received.find((r) => r.pattern === HOSTILE), { message: 'hostile event' });
    expect(await query(db.url, 'SELECT count(*)::int AS n FROM nestjs_transport.messages')).toEqual(
      [{ n: expect.any(Number) }],
    );
  });

  it('refuses empty, overlong and NUL-containing patterns', async () => {
    await expect(lastValueFrom(client.emit('', { n: 1 }))).rejects.toBeInstanceOf(
      InvalidPatternError,
    );
    await expect(lastValueFrom(client.emit('p'.repeat(513), { n: 1 }))).rejects.toThrow(
      /512 bytes/,
    );
    await expect(lastValueFrom(client.emit('a\0b', { n: 1 }))).rejects.toThrow(/NUL/);
  });

  it('dead-letters an event whose group lost its handler, with the reason, never retrying', async () => {
    // The group subscribed to "removed" once; a later deploy removed the handler.
    await query(
      db.url,
      `INSERT INTO nestjs_transport.subscriptions (pattern, kind, group_name) VALUES ('removed', 'event', 'inbox')`,
    );
    await lastValueFrom(client.emit('removed', { n: 1 }));
    const [row] = await waitFor(async () => {
      const rows = await query(
        db.url,
        "SELECT attempts, last_error FROM nestjs_transport.messages WHERE pattern = 'removed' AND dead_at IS NOT NULL",
      );
      return rows.length ? rows : undefined;
    });
    expect(row).toEqual({
      attempts: 1,
      last_error: 'no event handler for "removed" in group "inbox"',
    });
  });

  it("hands a row written by hand, not by a client, to the handler as Nest's external data", async () => {
    await query(
      db.url,
      `INSERT INTO nestjs_transport.messages (recipient, pattern, kind, idempotency_key, payload)
       VALUES ('inbox', 'raw', 'event', 'manual-1', '"just a string"')`,
    );
    await waitFor(() => raw.includes('just a string'), { message: 'the raw row' });
  });

  it('emits hot: the row is written without a subscriber', async () => {
    client.emit('blob', { data: 'hot' });
    await waitFor(() => received.find((r) => r.pattern === 'blob' && r.size === 3), {
      message: 'the unsubscribed emit',
    });
    await sleep(10);
  });

  it('gives a late subscriber the result of an emit that already finished', async () => {
    const emitted = client.emit('blob', { data: 'later' });
    await waitFor(() => received.find((r) => r.pattern === 'blob' && r.size === 5), {
      message: 'the emit subscribed to late',
    });
    await expect(lastValueFrom(emitted)).resolves.toEqual({ recipients: ['inbox'] });
  });

  it('raises no unhandled rejection for a failed emit nobody subscribes to', async () => {
    const unhandled: unknown[] = [];
    const record = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', record);
    try {
      client.emit('', { n: 1 });
      client.emit('blob', { n: 10n });
      await sleep(50);
    } finally {
      process.off('unhandledRejection', record);
    }
    expect(unhandled).toEqual([]);
  });

  it("refuses a missing pattern or payload with Nest's error, writing nothing", async () => {
    const before = await messageCount(db.url);
    await expect(lastValueFrom(client.emit(undefined, { n: 1 }))).rejects.toThrow(
      'The invalid data or message pattern (undefined/null)',
    );
    await expect(lastValueFrom(client.emit('blob', null))).rejects.toThrow(
      'The invalid data or message pattern (undefined/null)',
    );
    expect(await messageCount(db.url)).toBe(before);
  });
});
