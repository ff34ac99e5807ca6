import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Controller, type INestMicroservice } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import pg from 'pg';
import { lastValueFrom } from 'rxjs';
import {
  ClientPostgres,
  POSTGRES_TRANSPORT,
  PostgresContext,
  PostgresExceptionFilter,
  PostgresTransactionHost,
  ServerPostgres,
  TransactionEndedError,
} from '../../lib/index.js';
import { recordBusyQueries } from '../helpers/watched-queries.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { query, startClient, subscribe } from '../helpers/transport.js';
import { sleep, waitFor } from '../helpers/wait-for.js';

// Statements made together in one transaction (emits nobody awaits, queries run with
// Promise.all, a raw connection handed to other code) reach their connection one at a time and
// in order: node-postgres 8 warns when a client executing a query is given another, and pg 9
// stops queueing them.

async function keysIn(url: string, table: string): Promise<string[]> {
  const rows = await query<{ key: string }>(url, `SELECT key FROM ${table} ORDER BY key`);
  return rows.map((row) => row.key);
}

async function issuedKeys(url: string): Promise<string[]> {
  const rows = await query<{ key: string }>(
    url,
    `SELECT payload->'data'->>'key' AS key FROM nestjs_transport.messages
     WHERE pattern = 'issued' ORDER BY 1`,
  );
  return rows.map((row) => row.key);
}

// node-postgres 8.23's pipeline mode sends queued queries without waiting: the transaction's own
// queue still sends them one at a time there.
describe.each([false, true])(
  'statements of one transaction made together (pipeline: %s)',
  (pipeline) => {
    let db: TestDatabase;
    let pool: pg.Pool;
    let busy: string[];
    let host: PostgresTransactionHost;
    let client: ClientPostgres;

    beforeAll(async () => {
      db = await createTestDatabase();
      client = await startClient(db.url);
      await subscribe(db.url, 'issued', 'audit');
    });

    beforeEach(async () => {
      await query(db.url, 'DROP TABLE IF EXISTS items; CREATE TABLE items (key text PRIMARY KEY)');
      await query(db.url, "DELETE FROM nestjs_transport.messages WHERE pattern = 'issued'");
      pool = new pg.Pool({ connectionString: db.url, max: 1, pipeline });
      busy = recordBusyQueries(pool);
      host = new PostgresTransactionHost(pool);
    });

    afterEach(async () => {
      await pool.end();
    });

    afterAll(async () => {
      await client.close();
      await db.drop();
    });

    it('sends queries run together, emits nobody awaits and raw queries one at a time', async () => {
      for (const round of ['a', 'b']) {
        await host.run(async () => {
          const [one, inserted] = await Promise.all([
            host.query('SELECT 1 AS one'),
            host.query('INSERT INTO items (key) VALUES ($1) RETURNING key', [`${round}1`]),
            host.query('INSERT INTO items (key) VALUES ($1)', [`${round}2`]),
          ]);
          expect(one.rows).toEqual([{ one: 1 }]);
          expect(inserted.rows).toEqual([{ key: `${round}1` }]);
          const raw = host.client as pg.ClientBase;
          await Promise.all([
            raw.query('INSERT INTO items (key) VALUES ($1)', [`${round}3`]),
            raw.query("INSERT INTO items (key) VALUES ('" + round + "4')"),
          ]);
          client.emit('issued', { key: `${round}1` });
          client.emit('issued', { key: `${round}2` });
          client.emit('issued', { key: `${round}3` });
        });
      }
      expect(busy).toEqual([]);
      expect(await keysIn(db.url, 'items')).toEqual([
        'a1',
        'a2',
        'a3',
        'a4',
        'b1',
        'b2',
        'b3',
        'b4',
      ]);
      expect(await issuedKeys(db.url)).toEqual(['a1', 'a2', 'a3', 'b1', 'b2', 'b3']);
    });

    it('runs them in the order they were made', async () => {
      await host.run(async () => {
        const raw = host.client as pg.ClientBase;
        await Promise.all([
          host.query('INSERT INTO items (key) VALUES ($1)', ['first']),
          raw.query("UPDATE items SET key = 'second' WHERE key = 'first'"),
          host.query("UPDATE items SET key = 'third' WHERE key = $1", ['second']),
        ]);
      });
      expect(busy).toEqual([]);
      expect(await keysIn(db.url, 'items')).toEqual(['third']);
    });

    it('hands out a node-postgres client that also answers callbacks', async () => {
      await host
        .run(async () => {
          const raw = host.client as pg.ClientBase;
          expect(raw).toBeInstanceOf(pg.Client);
          const answer = await new Promise<unknown>((resolve, reject) =>
            raw.query('SELECT $1::int AS n', [7], (error, result) =>
              error ? reject(error) : resolve(result.rows),
            ),
          );
          expect(answer).toEqual([{ n: 7 }]);
          await new Promise<void>((resolve) => {
            raw.query('SELECT 1 / 0', (error) => {
              expect(error?.message).toMatch(/division by zero/);
              resolve();
            });
          });
        })
        .catch(() => undefined);
      expect(busy).toEqual([]);
    });

    it('sends a submittable query (a cursor, a stream) in its turn, until it is done', async () => {
      let held: pg.ClientBase | undefined;
      await host.run(async () => {
        held = host.client as pg.ClientBase;
        const rows: unknown[] = [];
        const submitted = new pg.Query('SELECT n FROM generate_series(1, 3) AS n');
        submitted.on('row', (row: unknown) => rows.push(row));
        const ended = new Promise((resolve) => submitted.on('end', resolve));
        const [first] = await Promise.all([
          held.query('INSERT INTO items (key) VALUES ($1) RETURNING key', ['s1']),
          Promise.resolve(held.query(submitted)).then(() => ended),
          held.query('INSERT INTO items (key) VALUES ($1)', ['s2']),
        ]);
        expect(first.rows).toEqual([{ key: 's1' }]);
        expect(rows).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
      });
      expect(busy).toEqual([]);
      expect(await keysIn(db.url, 'items')).toEqual(['s1', 's2']);
      expect(() => held!.query(new pg.Query('SELECT 1'))).toThrow(TransactionEndedError);
    });

    it('keeps its connection in the transaction when code releases it, as pool code does', async () => {
      let otherCheckout: Promise<pg.PoolClient> | undefined;
      let otherGotIt = false;
      await host.run(async () => {
        const raw = host.client as pg.PoolClient;
        await raw.query('INSERT INTO items (key) VALUES ($1)', ['before']);
        raw.release();
        // The pool has one connection: released, it would go to this checkout mid-transaction.
        otherCheckout = pool.connect().then((other) => {
          otherGotIt = true;
          return other;
        });
        await sleep(100);
        expect(otherGotIt).toBe(false);
        await raw.query('INSERT INTO items (key) VALUES ($1)', ['after']);
      });
      (await otherCheckout!).release();
      expect(busy).toEqual([]);
      expect(await keysIn(db.url, 'items')).toEqual(['after', 'before']);
    });

    it('refuses a query on a held raw connection once its transaction has ended', async () => {
      let held: pg.ClientBase | undefined;
      await host.run(async () => {
        held = host.client as pg.ClientBase;
        await held.query('INSERT INTO items (key) VALUES ($1)', ['inside']);
      });
      // The connection now serves the next transaction on the pool.
      const next = await host.begin();
      await next.query({ text: 'INSERT INTO items (key) VALUES ($1)', values: ['next'] });
      await expect(held!.query("INSERT INTO items (key) VALUES ('late')")).rejects.toThrow(
        TransactionEndedError,
      );
      const viaCallback = await new Promise<Error | undefined>((resolve) =>
        held!.query("INSERT INTO items (key) VALUES ('late')", (error) => resolve(error)),
      );
      expect(viaCallback).toBeInstanceOf(TransactionEndedError);
      await next.rollback();
      expect(await keysIn(db.url, 'items')).toEqual(['inside']);
    });
  },
);

/** Every key the handler ran for, in order, with its attempt. */
const runs: string[] = [];

@Controller()
class TogetherController {
  /**
   * Writes through ctx.query and the raw connection at once, and emits without awaiting. A key
   * starting with "fail" throws on its first attempt, so that its batch is replayed with
   * savepoints.
   */
  @EventPattern<string>('entry', POSTGRES_TRANSPORT)
  async entry(@Payload() body: { key: string }, @Ctx() ctx: PostgresContext) {
    runs.push(`${body.key}#${ctx.getAttempt()}`);
    const raw = ctx.getClient();
    await Promise.all([
      ctx.query('INSERT INTO ledger (key) VALUES ($1)', [body.key]),
      ctx.query('SELECT 1'),
      raw.query('INSERT INTO ledger (key) VALUES ($1)', [`${body.key}-raw`]),
    ]);
    // As a query builder's driver does with what it took; the batch keeps the connection.
    (raw as pg.PoolClient).release();
    if (body.key.startsWith('fail') && ctx.getAttempt() === 1) throw new Error('first attempt');
  }
}

describe.each([false, true])(
  'statements of one consume transaction made together (pipeline: %s)',
  (pipeline) => {
    let db: TestDatabase;
    let client: ClientPostgres;
    let pool: pg.Pool;
    let app: INestMicroservice | undefined;

    beforeAll(async () => {
      runs.length = 0;
      db = await createTestDatabase();
      await query(db.url, 'CREATE TABLE ledger (key text PRIMARY KEY)');
      client = await startClient(db.url);
    });

    afterEach(async () => {
      await app?.close();
      await pool?.end();
    });

    afterAll(async () => {
      await client.close();
      await db.drop();
    });

    async function consume(): Promise<string[]> {
      pool = new pg.Pool({ connectionString: db.url, max: 4, pipeline });
      const busy = recordBusyQueries(pool);
      const moduleRef = await Test.createTestingModule({
        controllers: [TogetherController],
      }).compile();
      app = moduleRef.createNestMicroservice({
        strategy: new ServerPostgres({ pool, group: 'together', retryDelayMs: 20 }),
        logger: false,
      });
      app.useGlobalFilters(new PostgresExceptionFilter());
      await app.listen();
      return busy;
    }

    it('sends them one at a time, in optimistic batches and in batches replayed with savepoints', async () => {
      // Registers the group, then leaves a backlog that the next consumer claims in one batch.
      await consume();
      await app!.close();
      app = undefined;
      await pool.end();
      const keys = ['k1', 'k2', 'fail3', 'k4', 'k5'];
      for (const key of keys) await lastValueFrom(client.emit('entry', { key }));

      const busy = await consume();
      await waitFor(async () => (await keysIn(db.url, 'ledger')).length === 2 * keys.length, {
        message: 'every message handled',
      });
      expect(busy).toEqual([]);
      // The replay ran k1 and k2 again, each in its own savepoint; fail3 kept its first outcome.
      expect(runs.filter((run) => run === 'fail3#2')).toHaveLength(1);
      expect(runs.filter((run) => run.startsWith('k1#'))).toHaveLength(2);
      expect(await keysIn(db.url, 'ledger')).toEqual(
        keys.flatMap((key) => [key, `${key}-raw`]).sort(),
      );
    });
  },
);
