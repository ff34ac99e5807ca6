import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  Body,
  ConflictException,
  Controller,
  Inject,
  Logger,
  Module,
  Post,
  Sse,
  type INestApplication,
  type MessageEvent,
} from '@nestjs/common';
import { ClientsModule, Ctx, EventPattern, Payload, type ClientProxy } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import pg from 'pg';
import { interval, lastValueFrom, map, type Observable } from 'rxjs';
import request from 'supertest';
import {
  POSTGRES_TRANSPORT,
  PostgresContext,
  PostgresTransactionHost,
  PostgresTransport,
  PostgresTransportModule,
  Transactional,
} from '../../lib/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { query } from '../helpers/transport.js';
import { sleep, waitFor } from '../helpers/wait-for.js';

const shipped: string[] = [];

@Controller('orders')
class OrdersController {
  constructor(
    private readonly db: PostgresTransactionHost,
    @Inject('ORDERS') private readonly events: ClientProxy,
  ) {}

  @Post()
  @Transactional()
  async create(
    @Body()
    body: {
      id: string;
      fail?: 'after-emit' | 'not-fire-and-forget' | 'swallowed';
      unawaited?: boolean;
    },
  ) {
    await this.db.query('INSERT INTO orders (id) VALUES ($1)', [body.id]);
    if (body.unawaited) {
      // Nest's usual way to emit: nobody waits for it; the interceptor's commit does.
      this.events.emit('order.created', { id: body.id });
      return { id: body.id };
    }
    if (body.fail === 'not-fire-and-forget') {
      // Not awaited: the interceptor still waits for the write before it commits or rolls back.
      this.events.emit('order.created', { id: body.id });
      throw new ConflictException('rejected after a fire-and-forget emit');
    }
    await lastValueFrom(this.events.emit('order.created', { id: body.id }));
    if (body.fail === 'after-emit') throw new ConflictException('rejected after emit');
    if (body.fail === 'swallowed') {
      // A duplicate key aborts the transaction; the error is caught and the handler returns.
      await this.db.query('INSERT INTO orders (id) VALUES ($1)', [body.id]).catch(() => undefined);
    }
    return { id: body.id };
  }

  @Sse('feed')
  @Transactional()
  feed(): Observable<MessageEvent> {
    return interval(10).pipe(map((n): MessageEvent => ({ data: { n } })));
  }
}

@Controller()
class ShippingController {
  constructor(@Inject('ORDERS') private readonly events: ClientProxy) {}

  // On a ServerPostgres handler the interceptor joins the consume transaction.
  @EventPattern<string>('order.created', POSTGRES_TRANSPORT)
  @Transactional()
  async ship(
    @Payload() order: { id: string; failShipping?: boolean },
    @Ctx() ctx: PostgresContext,
  ) {
    await ctx.query('INSERT INTO shipments (order_id) VALUES ($1)', [order.id]);
    await lastValueFrom(this.events.emit('shipment.created', { orderId: order.id }));
    if (order.id.startsWith('roll')) throw new Error('shipping refused');
  }

  @EventPattern<string>('shipment.created', POSTGRES_TRANSPORT)
  shipmentCreated(@Payload() shipment: { orderId: string }) {
    shipped.push(shipment.orderId);
  }
}

function appModule(url: string) {
  @Module({
    imports: [
      PostgresTransportModule.forRoot({ connectionString: url }),
      ClientsModule.registerAsync([
        {
          name: 'ORDERS',
          inject: [PostgresTransport],
          useFactory: (transport: PostgresTransport) => transport.clientOptions(),
        },
      ]),
    ],
    controllers: [OrdersController, ShippingController],
  })
  class AppModule {}
  return AppModule;
}

async function count(url: string, sql: string, values?: unknown[]): Promise<number> {
  return (await query(url, `SELECT count(*)::int AS n FROM (${sql}) AS q`, values))[0].n;
}

describe('atomic publish', () => {
  let db: TestDatabase;
  let app: INestApplication;

  beforeAll(async () => {
    db = await createTestDatabase();
    await query(
      db.url,
      'CREATE TABLE orders (id text PRIMARY KEY); CREATE TABLE shipments (order_id text NOT NULL)',
    );
    const moduleRef = await Test.createTestingModule({ imports: [appModule(db.url)] }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    const transport = app.get(PostgresTransport);
    app.connectMicroservice({ strategy: transport.createServer({ group: 'shipping' }) });
    await app.startAllMicroservices();
    await app.init();
  });

  afterAll(async () => {
    await app.close();
    await db.drop();
  });

  const ordersWithMessages = (id: string) =>
    count(
      db.url,
      `SELECT 1 FROM orders o JOIN nestjs_transport.messages m
         ON m.pattern = 'order.created' AND m.payload->'data'->>'id' = o.id WHERE o.id = $1`,
      [id],
    );

  it('commits the order and its message together; the consumer handles it once', async () => {
    await request(app.getHttpServer())
      .post('/orders')
      .send({ id: 'o-1' })
      .expect(201, { id: 'o-1' });
    expect(await ordersWithMessages('o-1')).toBe(1);
    await waitFor(() => shipped.includes('o-1'), { message: 'shipment of o-1' });
    expect(await count(db.url, "SELECT 1 FROM shipments WHERE order_id = 'o-1'")).toBe(1);
  });

  it('commits an emit the handler did not await with the order, in the same transaction', async () => {
    // now() is the start of the transaction that calls it: equal stamps mean one transaction.
    // (xmin cannot tell: the consumer's claim rewrites the message row.)
    await query(
      db.url,
      'ALTER TABLE orders ADD COLUMN IF NOT EXISTS created_at timestamptz DEFAULT now()',
    );
    await request(app.getHttpServer())
      .post('/orders')
      .send({ id: 'o-9', unawaited: true })
      .expect(201, { id: 'o-9' });
    // Committed before the response was sent.
    const [row] = await query<{ same: boolean }>(
      db.url,
      `SELECT (SELECT created_at FROM orders WHERE id = 'o-9') =
              (SELECT created_at FROM nestjs_transport.messages
               WHERE pattern = 'order.created' AND payload->'data'->>'id' = 'o-9') AS same`,
    );
    expect(row.same).toBe(true);
    await waitFor(() => shipped.includes('o-9'), { message: 'shipment of o-9' });
  });

  it('leaves neither row nor message when the handler throws after emitting', async () => {
    await request(app.getHttpServer())
      .post('/orders')
      .send({ id: 'o-2', fail: 'after-emit' })
      .expect(409);
    await request(app.getHttpServer())
      .post('/orders')
      .send({ id: 'o-3', fail: 'not-fire-and-forget' })
      .expect(409);
    await sleep(500);
    for (const id of ['o-2', 'o-3']) {
      expect(await count(db.url, 'SELECT 1 FROM orders WHERE id = $1', [id])).toBe(0);
      expect(
        await count(
          db.url,
          "SELECT 1 FROM nestjs_transport.messages WHERE payload->'data'->>'id' = $1",
          [id],
        ),
      ).toBe(0);
      expect(await count(db.url, 'SELECT 1 FROM shipments WHERE order_id = $1', [id])).toBe(0);
    }
  });

  it('fails a request whose handler caught a failed statement, and keeps nothing of it', async () => {
    await request(app.getHttpServer())
      .post('/orders')
      .send({ id: 'o-4', fail: 'swallowed' })
      .expect(500);
    await sleep(300);
    expect(await count(db.url, "SELECT 1 FROM orders WHERE id = 'o-4'")).toBe(0);
    expect(
      await count(
        db.url,
        "SELECT 1 FROM nestjs_transport.messages WHERE payload->'data'->>'id' = 'o-4'",
      ),
    ).toBe(0);
  });

  it('of 200 concurrent requests with random failures, persists exactly the successful ones', async () => {
    const ids = Array.from({ length: 200 }, (_, i) => `c-${i}`);
    const failing = new Set(ids.filter(() => Math.random() < 0.4));
    const statuses = await Promise.all(
      ids.map(async (id) => {
        const fail = failing.has(id) ? 'after-emit' : undefined;
        return (await request(app.getHttpServer()).post('/orders').send({ id, fail })).status;
      }),
    );
    expect(statuses.filter((s) => s === 201)).toHaveLength(200 - failing.size);
    const succeeded = ids.filter((id) => !failing.has(id));
    await waitFor(() => succeeded.every((id) => shipped.includes(id)), {
      timeoutMs: 30_000,
      message: 'every successful order shipped',
    });
    const orders = await query(db.url, "SELECT id FROM orders WHERE id LIKE 'c-%' ORDER BY id");
    expect(orders.map((o) => o.id)).toEqual([...succeeded].sort());
    const messages = await query(
      db.url,
      `SELECT payload->'data'->>'id' AS id FROM nestjs_transport.messages
       WHERE pattern = 'order.created' AND payload->'data'->>'id' LIKE 'c-%' ORDER BY 1`,
    );
    expect(messages.map((m) => m.id)).toEqual([...succeeded].sort());
    expect(await count(db.url, "SELECT 1 FROM shipments WHERE order_id LIKE 'c-%'")).toBe(
      succeeded.length,
    );
  });

  it("drops a handler's emits when its consume transaction rolls back", async () => {
    const transport = app.get(PostgresTransport);
    const client = transport.createClient();
    await lastValueFrom(client.emit('order.created', { id: 'roll-1' }));
    await waitFor(
      async () =>
        (await count(
          db.url,
          "SELECT 1 FROM nestjs_transport.messages WHERE pattern = 'order.created' AND payload->'data'->>'id' = 'roll-1' AND attempts >= 2",
        )) === 1,
      { timeoutMs: 10_000, message: 'a retried roll-1' },
    );
    expect(await count(db.url, "SELECT 1 FROM shipments WHERE order_id = 'roll-1'")).toBe(0);
    expect(
      await count(
        db.url,
        "SELECT 1 FROM nestjs_transport.messages WHERE pattern = 'shipment.created' AND payload->'data'->>'orderId' = 'roll-1'",
      ),
    ).toBe(0);
    expect(shipped).not.toContain('roll-1');
    await client.close();
  });

  it('joins a transaction handed over as a pg PoolClient', async () => {
    const host = app.get(PostgresTransactionHost);
    const client = app.get(PostgresTransport).createClient();
    const pool = new pg.Pool({ connectionString: db.url });
    for (const [id, outcome] of [
      ['x-commit', 'COMMIT'],
      ['x-rollback', 'ROLLBACK'],
    ] as const) {
      const conn = await pool.connect();
      await conn.query('BEGIN');
      await conn.query('INSERT INTO orders (id) VALUES ($1)', [id]);
      await host.runWith(conn, () => lastValueFrom(client.emit('order.created', { id })));
      await conn.query(outcome);
      conn.release();
    }
    await waitFor(() => shipped.includes('x-commit'), { message: 'x-commit shipped' });
    await sleep(300);
    expect(shipped).not.toContain('x-rollback');
    expect(
      await count(
        db.url,
        "SELECT 1 FROM nestjs_transport.messages WHERE payload->'data'->>'id' = 'x-rollback'",
      ),
    ).toBe(0);
    await pool.end();
    await client.close();
  });

  it('publishes from any transaction through emitStatement (for tools that cannot hand over a client)', async () => {
    const client = app.get(PostgresTransport).createClient();
    const pool = new pg.Pool({ connectionString: db.url });
    for (const [id, outcome] of [
      ['s-commit', 'COMMIT'],
      ['s-rollback', 'ROLLBACK'],
    ] as const) {
      const statement = client.emitStatement('order.created', { id });
      const conn = await pool.connect();
      await conn.query('BEGIN');
      await conn.query('INSERT INTO orders (id) VALUES ($1)', [id]);
      await conn.query(statement.text, statement.values);
      await conn.query(outcome);
      conn.release();
    }
    await waitFor(() => shipped.includes('s-commit'), { message: 's-commit shipped' });
    expect(
      await count(
        db.url,
        "SELECT 1 FROM nestjs_transport.messages WHERE payload->'data'->>'id' = 's-rollback'",
      ),
    ).toBe(0);
    await pool.end();
    await client.close();
  });

  it('joins the outer transaction when run() is nested, and keeps concurrent ones apart', async () => {
    const host = app.get(PostgresTransactionHost);
    const pids = await Promise.all(
      Array.from({ length: 5 }, () =>
        host.run(async () => {
          const outer = (await host.query('SELECT txid_current() AS tx')).rows[0].tx;
          const inner = await host.run(
            async () => (await host.query('SELECT txid_current() AS tx')).rows[0].tx,
          );
          expect(inner).toBe(outer);
          return outer;
        }),
      ),
    );
    expect(new Set(pids).size).toBe(5);
    expect(host.isInTransaction).toBe(false);
  });

  it('refuses to hold a transaction open for a Server-Sent Events stream', async () => {
    const logged: string[] = [];
    Logger.overrideLogger({
      log: () => undefined,
      warn: () => undefined,
      error: (...args: unknown[]) => void logged.push(args.map(String).join(' ')),
    });
    try {
      await request(app.getHttpServer()).get('/orders/feed').expect(500);
    } finally {
      Logger.overrideLogger(false);
    }
    expect(logged.join('\n')).toContain('a transaction cannot stay open for a stream');
  });

  it('joins a transaction reported by externalTransaction (the nestjs-cls path)', async () => {
    const pool = new pg.Pool({ connectionString: db.url });
    let current: pg.PoolClient | undefined;
    const client = app.get(PostgresTransport).createClient({ externalTransaction: () => current });
    for (const [id, outcome] of [
      ['e-commit', 'COMMIT'],
      ['e-rollback', 'ROLLBACK'],
    ] as const) {
      current = await pool.connect();
      await current.query('BEGIN');
      await lastValueFrom(client.emit('order.created', { id }));
      await current.query(outcome);
      current.release();
      current = undefined;
    }
    await waitFor(() => shipped.includes('e-commit'), { message: 'e-commit shipped' });
    expect(
      await count(
        db.url,
        "SELECT 1 FROM nestjs_transport.messages WHERE payload->'data'->>'id' = 'e-rollback'",
      ),
    ).toBe(0);
    await pool.end();
    await client.close();
  });
});
