import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Controller, Inject, type ExecutionContext } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import pg from 'pg';
import { from, lastValueFrom, toArray } from 'rxjs';
import {
  ClientPostgres,
  PayloadError,
  POSTGRES_TRANSPORT,
  PostgresContext,
  PostgresTransactionHost,
  PostgresTransactionInterceptor,
  TransactionEndedError,
} from '../../lib/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { countRoundTrips } from '../helpers/round-trips.js';
import { query, startServer, subscribe } from '../helpers/transport.js';
import { sleep, waitFor } from '../helpers/wait-for.js';

// An emit is hot: a handler may call it and return without awaiting it. Its write must still
// land in the caller's transaction, including the first emit of a client, which waits for the
// client to connect before it writes anything.

/** The transaction ids that wrote each table's rows with `key`, as text. */
async function writers(url: string, key: string): Promise<{ items: string[]; messages: string[] }> {
  const [row] = await query<{ items: string[]; messages: string[] }>(
    url,
    `SELECT
       ARRAY(SELECT xmin::text FROM items WHERE key = $1) AS items,
       ARRAY(SELECT xmin::text FROM nestjs_transport.messages
             WHERE pattern = 'issued' AND payload->'data'->>'key' = $1) AS messages`,
    [key],
  );
  return row;
}

describe('an emit nobody awaits, inside PostgresTransactionHost.run', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let host: PostgresTransactionHost;
  let client: ClientPostgres;

  beforeAll(async () => {
    db = await createTestDatabase();
    await query(db.url, 'CREATE TABLE items (key text PRIMARY KEY)');
    const migrating = new ClientPostgres({ connectionString: db.url });
    await migrating.connect();
    await migrating.close();
    await subscribe(db.url, 'issued', 'audit');
  });

  beforeEach(() => {
    // One connection: a write that escaped its transaction would land in the next one.
    pool = new pg.Pool({ connectionString: db.url, max: 1 });
    pool.on('error', () => undefined);
    host = new PostgresTransactionHost(pool);
    // Not connected yet, so that its first emit waits for the connection before writing.
    client = new ClientPostgres({ connectionString: db.url });
  });

  afterEach(async () => {
    await client.close();
    await pool.end();
  });

  afterAll(async () => {
    await db.drop();
  });

  it("commits the emit in the same transaction as the function's own write", async () => {
    await host.run(async () => {
      await host.query('INSERT INTO items (key) VALUES ($1)', ['c1']);
      client.emit('issued', { key: 'c1' });
    });
    // Already committed when run() resolves, by the transaction that wrote the item.
    const { items, messages } = await writers(db.url, 'c1');
    expect(items).toHaveLength(1);
    expect(messages).toEqual(items);
  });

  it('rolls the emit back with the transaction when the function throws', async () => {
    await expect(
      host.run(async () => {
        await host.query('INSERT INTO items (key) VALUES ($1)', ['r1']);
        client.emit('issued', { key: 'r1' });
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    // The next transaction on the same connection commits only its own rows.
    await host.run(async () => {
      await host.query('INSERT INTO items (key) VALUES ($1)', ['r2']);
    });
    await sleep(200);
    expect(await writers(db.url, 'r1')).toEqual({ items: [], messages: [] });
    expect((await writers(db.url, 'r2')).messages).toEqual([]);
  });

  /** A transaction with a query and an emit, so that the connection has prepared BEGIN and COMMIT. */
  async function warmUp(): Promise<void> {
    await host.run(async () => {
      await host.query('INSERT INTO items (key) VALUES ($1)', [`warm-${Math.random()}`]);
      await lastValueFrom(client.emit('issued', { key: 'warm' }));
    });
  }

  it('sends an emit nobody awaits with BEGIN and COMMIT, in one round trip', async () => {
    await warmUp();
    const trips = await countRoundTrips(pool);
    await host.run(async () => {
      client.emit('issued', { key: 'a1' });
    });
    expect(trips.count()).toBe(1);
    expect((await writers(db.url, 'a1')).messages).toHaveLength(1);
  });

  it('sends an emit nobody awaits after a statement with COMMIT: two round trips', async () => {
    await warmUp();
    const trips = await countRoundTrips(pool);
    await host.run(async () => {
      await host.query('INSERT INTO items (key) VALUES ($1)', ['b1']);
      client.emit('issued', { key: 'b1' });
    });
    expect(trips.count()).toBe(2);
    const { items, messages } = await writers(db.url, 'b1');
    expect(messages).toEqual(items);
  });

  it('sends an awaited emit without waiting for the commit, and statements in the order made', async () => {
    await warmUp();
    const trips = await countRoundTrips(pool);
    const seen: string[] = [];
    await host.run(async () => {
      const { recipients } = await lastValueFrom(client.emit('issued', { key: 'aw1' }));
      seen.push(...recipients);
      await host.query('INSERT INTO items (key) VALUES ($1)', ['aw1']);
    });
    expect(seen).toEqual(['audit']);
    // BEGIN with the emit, the INSERT, COMMIT.
    expect(trips.count()).toBe(3);
    const [row] = await query<{ before: boolean }>(
      db.url,
      `SELECT (SELECT xmin::text FROM items WHERE key = 'aw1') =
              (SELECT xmin::text FROM nestjs_transport.messages
               WHERE payload->'data'->>'key' = 'aw1') AS before`,
    );
    expect(row.before).toBe(true);
  });

  it('sends an emit nobody awaits in an intercepted handler with COMMIT', async () => {
    await warmUp();
    const interceptor = new PostgresTransactionInterceptor(host);
    const handler = async () => {
      client.emit('issued', { key: 'i1' });
      return 'created';
    };
    const context = {
      getHandler: () => handler,
      getClass: () => Object,
    } as unknown as ExecutionContext;
    const trips = await countRoundTrips(pool);
    const values = await lastValueFrom(
      interceptor.intercept(context, { handle: () => from(handler()) }).pipe(toArray()),
    );
    expect(values).toEqual(['created']);
    expect(trips.count()).toBe(1);
    expect((await writers(db.url, 'i1')).messages).toHaveLength(1);
  });

  it('writes several emits nobody awaits in the order they were made', async () => {
    await warmUp();
    const trips = await countRoundTrips(pool);
    await host.run(async () => {
      for (const key of ['d1', 'd2', 'd3']) client.emit('issued', { key });
    });
    expect(trips.count()).toBe(3);
    const rows = await query<{ key: string }>(
      db.url,
      `SELECT payload->'data'->>'key' AS key FROM nestjs_transport.messages
       WHERE payload->'data'->>'key' LIKE 'd_' ORDER BY id`,
    );
    expect(rows.map((row) => row.key)).toEqual(['d1', 'd2', 'd3']);
  });

  it('rolls back everything when the emit sent with COMMIT fails, and the connection goes on', async () => {
    await query(
      db.url,
      `CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.payload->'data'->>'key' = 'boom' THEN RAISE EXCEPTION 'boom refused'; END IF;
         RETURN NEW;
       END $$;
       CREATE TRIGGER refuse_boom BEFORE INSERT ON nestjs_transport.messages
         FOR EACH ROW EXECUTE FUNCTION refuse_boom()`,
    );
    try {
      await warmUp();
      let emitted: Promise<unknown> | undefined;
      await expect(
        host.run(async () => {
          await host.query('INSERT INTO items (key) VALUES ($1)', ['e1']);
          emitted = lastValueFrom(client.emit('issued', { key: 'boom' }));
        }),
      ).rejects.toThrow('boom refused');
      await expect(emitted).rejects.toThrow('boom refused');
      expect((await writers(db.url, 'e1')).items).toEqual([]);
      await host.run(async () => {
        await host.query('INSERT INTO items (key) VALUES ($1)', ['e2']);
        client.emit('issued', { key: 'e2' });
      });
      expect((await writers(db.url, 'e2')).messages).toHaveLength(1);
    } finally {
      await query(db.url, 'DROP TRIGGER refuse_boom ON nestjs_transport.messages');
    }
  });

  it('fails the transaction whose emit cannot be written, even if nobody awaits it', async () => {
    const circular: Record<string, unknown> = { key: 'p1' };
    circular.self = circular;
    await expect(
      host.run(async () => {
        await host.query('INSERT INTO items (key) VALUES ($1)', ['p1']);
        client.emit('issued', circular);
      }),
    ).rejects.toBeInstanceOf(PayloadError);
    expect(await writers(db.url, 'p1')).toEqual({ items: [], messages: [] });
  });

  it('sends an awaited emit queued behind one that fails, and then fails the transaction', async () => {
    // The first emit's client is still connecting, so the second emit's statement is ready
    // first and waits behind it, to keep their order.
    const connected = new ClientPostgres({ connectionString: db.url });
    await connected.connect();
    const circular: Record<string, unknown> = { key: 'o1' };
    circular.self = circular;
    let second: unknown;
    try {
      await expect(
        host.run(async () => {
          client.emit('issued', circular);
          second = await lastValueFrom(connected.emit('issued', { key: 'o2' }));
        }),
      ).rejects.toBeInstanceOf(PayloadError);
    } finally {
      await connected.close();
    }
    expect(second).toEqual({ recipients: ['audit'] });
    expect((await writers(db.url, 'o2')).messages).toEqual([]);
  });

  it('keeps neither the write nor the emit when the connection dies before the COMMIT they leave with', async () => {
    await warmUp();
    await expect(
      host.run(async () => {
        await host.query('INSERT INTO items (key) VALUES ($1)', ['x1']);
        const { rows } = await host.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        await query(db.url, 'SELECT pg_terminate_backend($1)', [rows[0].pid]);
        client.emit('issued', { key: 'x1' });
      }),
    ).rejects.toThrow();
    expect(await writers(db.url, 'x1')).toEqual({ items: [], messages: [] });
    // The dead connection was dropped; the next transaction runs on a new one.
    await host.run(async () => {
      await host.query('INSERT INTO items (key) VALUES ($1)', ['x2']);
      client.emit('issued', { key: 'x2' });
    });
    const { items, messages } = await writers(db.url, 'x2');
    expect(items).toHaveLength(1);
    expect(messages).toEqual(items);
  });

  it('refuses an emit made after the transaction ended, and writes nothing', async () => {
    let late: Promise<unknown> | undefined;
    await host.run(async () => {
      await host.query('INSERT INTO items (key) VALUES ($1)', ['l1']);
      // A timer started inside keeps the transaction's context but outlives it.
      setTimeout(() => (late = lastValueFrom(client.emit('issued', { key: 'l1' }))), 20);
    });
    await waitFor(() => late !== undefined, { message: 'the late emit' });
    await expect(late).rejects.toBeInstanceOf(TransactionEndedError);
    await sleep(100);
    expect((await writers(db.url, 'l1')).messages).toEqual([]);
  });

  it("refuses an emit made in runWith's context after runWith resolved", async () => {
    let late: Promise<unknown> | undefined;
    const connection = await pool.connect();
    try {
      await connection.query('BEGIN');
      await host.runWith(connection, async () => {
        await connection.query('INSERT INTO items (key) VALUES ($1)', ['h1']);
        setTimeout(() => (late = lastValueFrom(client.emit('issued', { key: 'h1' }))), 20);
      });
      await connection.query('COMMIT');
    } finally {
      connection.release();
    }
    await waitFor(() => late !== undefined, { message: 'the late emit' });
    await expect(late).rejects.toBeInstanceOf(TransactionEndedError);
    await sleep(100);
    expect((await writers(db.url, 'h1')).messages).toEqual([]);
  });

  it('refuses a query made after the transaction ended', async () => {
    let late: Promise<unknown> | undefined;
    await host.run(async () => {
      await host.query('INSERT INTO items (key) VALUES ($1)', ['q1']);
      setTimeout(() => (late = host.query('INSERT INTO items (key) VALUES ($1)', ['q2'])), 20);
    });
    await waitFor(() => late !== undefined, { message: 'the late query' });
    await expect(late).rejects.toBeInstanceOf(TransactionEndedError);
    expect((await writers(db.url, 'q2')).items).toEqual([]);
  });
});

describe('an emit nobody awaits, inside a consume handler', () => {
  const ISSUER = 'ISSUER';
  /** What the late work of "late" tickets met, once the batch had committed. */
  const lateErrors: unknown[] = [];

  @Controller()
  class TicketController {
    constructor(@Inject(ISSUER) private readonly issuer: ClientPostgres) {}

    /**
     * Writes an item and emits without awaiting; a key starting with "fail" then throws, one
     * starting with "late" does both from a timer instead.
     */
    @EventPattern<string>('ticket', POSTGRES_TRANSPORT)
    async ticket(@Payload() body: { key: string }, @Ctx() ctx: PostgresContext) {
      if (body.key.startsWith('late')) {
        // Work the handler starts and does not wait for: it outlives the consume transaction.
        setTimeout(() => {
          ctx.query('INSERT INTO items (key) VALUES ($1)', [body.key]).catch((error: unknown) => {
            lateErrors.push(error);
          });
          lastValueFrom(this.issuer.emit('issued', { key: body.key })).catch((error: unknown) => {
            lateErrors.push(error);
          });
        }, 100);
        return;
      }
      await ctx.query('INSERT INTO items (key) VALUES ($1)', [body.key]);
      this.issuer.emit('issued', { key: body.key });
      if (body.key.startsWith('fail')) throw new Error(`${body.key} refused`);
    }
  }

  let db: TestDatabase;
  let issuer: ClientPostgres;
  let app: { close(): Promise<void> };
  let sender: ClientPostgres;

  beforeAll(async () => {
    db = await createTestDatabase();
    await query(db.url, 'CREATE TABLE items (key text PRIMARY KEY)');
    // Not connected before the handler's first emit.
    issuer = new ClientPostgres({ connectionString: db.url });
    ({ app } = await startServer(db.url, [TicketController], { group: 'tickets', maxAttempts: 1 }, [
      { provide: ISSUER, useValue: issuer },
    ]));
    await subscribe(db.url, 'issued', 'audit');
    sender = new ClientPostgres({ connectionString: db.url });
    await sender.connect();
  });

  afterAll(async () => {
    await sender.close();
    await app.close();
    await issuer.close();
    await db.drop();
  });

  it('refuses the queries and emits a handler makes after its consume transaction ended', async () => {
    await lastValueFrom(sender.emit('ticket', { key: 'late-1' }));
    await waitFor(() => lateErrors.length === 2, { message: 'the late work' });
    for (const error of lateErrors) expect(error).toBeInstanceOf(TransactionEndedError);
    expect(await writers(db.url, 'late-1')).toEqual({ items: [], messages: [] });
  });

  it('writes the emit in the consume transaction, and rolls it back with a failed handler', async () => {
    await lastValueFrom(sender.emit('ticket', { key: 'fail-1' }));
    await lastValueFrom(sender.emit('ticket', { key: 't1' }));
    await waitFor(async () => (await writers(db.url, 't1')).messages.length > 0, {
      message: 'the emit of t1',
    });
    const { items, messages } = await writers(db.url, 't1');
    expect(items).toHaveLength(1);
    expect(messages).toEqual(items);
    await waitFor(
      async () =>
        (
          await query(
            db.url,
            "SELECT 1 FROM nestjs_transport.messages WHERE pattern = 'ticket' AND dead_at IS NOT NULL",
          )
        ).length === 1,
      { message: 'the failed ticket dead-lettered' },
    );
    await sleep(200);
    expect(await writers(db.url, 'fail-1')).toEqual({ items: [], messages: [] });
  });
});
