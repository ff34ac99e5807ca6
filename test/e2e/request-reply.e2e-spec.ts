import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, type INestMicroservice } from '@nestjs/common';
import { Ctx, MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import { firstValueFrom, from, lastValueFrom, toArray } from 'rxjs';
import {
  ClientPostgres,
  POSTGRES_TRANSPORT,
  PostgresContext,
  ReplyTimeoutError,
} from '../../lib/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { query, startClient, startServer } from '../helpers/transport.js';
import { sleep } from '../helpers/wait-for.js';

@Controller()
class QuoteController {
  @MessagePattern('quote.sync', POSTGRES_TRANSPORT)
  sync(@Payload() request: { qty: number }) {
    return { price: request.qty * 10 };
  }

  @MessagePattern('quote.promise', POSTGRES_TRANSPORT)
  async promise(@Payload() request: { qty: number }, @Ctx() ctx: PostgresContext) {
    await ctx.query('INSERT INTO quotes (qty) VALUES ($1)', [request.qty]);
    return { price: request.qty * 20, attempt: ctx.getAttempt() };
  }

  @MessagePattern('quote.stream', POSTGRES_TRANSPORT)
  stream(@Payload() request: { qty: number }) {
    return from([1, 2, 3].map((n) => n * request.qty));
  }

  @MessagePattern({ cmd: 'quote', version: 2 }, POSTGRES_TRANSPORT)
  objectPattern(@Payload() request: { qty: number }) {
    return request.qty + 1;
  }

  @MessagePattern('quote.fails', POSTGRES_TRANSPORT)
  async fails(@Payload() request: { qty: number }, @Ctx() ctx: PostgresContext) {
    await ctx.query('INSERT INTO quotes (qty) VALUES ($1)', [request.qty]);
    throw new RpcException({ status: 'error', message: 'out of stock' });
  }

  @MessagePattern('quote.void', POSTGRES_TRANSPORT)
  nothing() {
    return undefined;
  }
}

@Controller()
class SlowController {
  @MessagePattern('quote.unserved', POSTGRES_TRANSPORT)
  unserved() {
    return 'never';
  }
}

describe('request/reply', () => {
  let db: TestDatabase;
  let client: ClientPostgres;
  let app: INestMicroservice;

  beforeAll(async () => {
    db = await createTestDatabase();
    await query(db.url, 'CREATE TABLE quotes (qty int NOT NULL)');
    ({ app } = await startServer(db.url, [QuoteController], { group: 'pricing' }));
    // A group that subscribed once, then went away: its requests are stored but never answered.
    const gone = await startServer(db.url, [SlowController], { group: 'gone' });
    await gone.app.close();
    client = await startClient(db.url, { replyTimeoutMs: 2_000 });
  });

  afterAll(async () => {
    await client.close();
    await app.close();
    await db.drop();
  });

  it('answers synchronous, Promise and Observable handlers', async () => {
    expect(await firstValueFrom(client.send('quote.sync', { qty: 2 }))).toEqual({ price: 20 });
    expect(await firstValueFrom(client.send('quote.promise', { qty: 3 }))).toEqual({
      price: 60,
      attempt: 1,
    });
    expect(await lastValueFrom(client.send('quote.stream', { qty: 5 }).pipe(toArray()))).toEqual([
      5, 10, 15,
    ]);
    expect(await firstValueFrom(client.send({ version: 2, cmd: 'quote' }, { qty: 1 }))).toBe(2);
    // As on Nest's own transports, a handler returning nothing replies with one undefined value.
    expect(await lastValueFrom(client.send('quote.void', {}).pipe(toArray()))).toEqual([undefined]);
    expect(await query(db.url, 'SELECT qty FROM quotes')).toEqual([{ qty: 3 }]);
  });

  it('answers 100 concurrent requests, each with its own reply', async () => {
    const replies = await Promise.all(
      Array.from({ length: 100 }, (_, qty) => firstValueFrom(client.send('quote.sync', { qty }))),
    );
    expect(replies).toEqual(Array.from({ length: 100 }, (_, qty) => ({ price: qty * 10 })));
  });

  it("returns the handler's error and rolls back its writes", async () => {
    await expect(firstValueFrom(client.send('quote.fails', { qty: 99 }))).rejects.toEqual({
      status: 'error',
      message: 'out of stock',
    });
    expect(await query(db.url, 'SELECT qty FROM quotes WHERE qty = 99')).toEqual([]);
    const [row] = await query(
      db.url,
      "SELECT attempts, consumed_at IS NOT NULL AS consumed FROM nestjs_transport.messages WHERE pattern = 'quote.fails'",
    );
    expect(row).toEqual({ attempts: 1, consumed: true });
  });

  it("fails with Nest's no-handler error for a pattern nobody serves", async () => {
    await expect(firstValueFrom(client.send('quote.unknown', {}))).rejects.toBe(
      'There is no matching message handler defined in the remote service.',
    );
  });

  it('fails with ReplyTimeoutError when the serving group does not answer', async () => {
    const started = Date.now();
    const error = await firstValueFrom(client.send('quote.unserved', {})).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ReplyTimeoutError);
    expect((error as Error).message).toContain('"quote.unserved" within 2000 ms');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_900);
  });

  it('keeps send cold: nothing is written until subscription', async () => {
    client.send('quote.sync', { qty: 777 });
    await sleep(200);
    const rows = await query(
      db.url,
      "SELECT 1 FROM nestjs_transport.messages WHERE kind = 'request' AND payload->'data'->>'qty' = '777'",
    );
    expect(rows).toEqual([]);
  });
});
