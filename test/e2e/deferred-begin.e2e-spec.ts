import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import {
  PostgresTransactionHost,
  TransactionAbortedError,
  type PostgresTransport,
} from '../../lib/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { countRoundTrips } from '../helpers/round-trips.js';
import { query } from '../helpers/transport.js';

const INSERT = 'INSERT INTO items (id) VALUES ($1)';

async function itemIds(url: string): Promise<number[]> {
  const rows = await query<{ id: number }>(url, 'SELECT id FROM items ORDER BY id');
  return rows.map((row) => row.id);
}

describe('PostgresTransactionHost: BEGIN leaves with the first statement', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let host: PostgresTransactionHost;

  beforeAll(async () => {
    db = await createTestDatabase();
    await query(db.url, 'CREATE TABLE items (id int PRIMARY KEY)');
  });

  beforeEach(async () => {
    await query(db.url, 'TRUNCATE items');
    // One connection, so that every transaction of a test runs on the connection counted.
    pool = new pg.Pool({ connectionString: db.url, max: 1 });
    pool.on('error', () => undefined);
    host = new PostgresTransactionHost(pool);
  });

  afterEach(async () => {
    await pool.end();
  });

  afterAll(async () => {
    await db.drop();
  });

  it('runs a transaction of two statements in three round trips once the connection has prepared BEGIN', async () => {
    const trips = await countRoundTrips(pool);
    // The connection's first transaction prepares BEGIN in a round trip of its own.
    await host.run(async () => {
      await host.query(INSERT, [1]);
      await host.query(INSERT, [2]);
    });
    expect(trips.count()).toBe(4);
    await host.run(async () => {
      await host.query(INSERT, [3]);
      await host.query(INSERT, [4]);
    });
    expect(trips.count()).toBe(4 + 3);
    expect(await itemIds(db.url)).toEqual([1, 2, 3, 4]);
  });

  it('keeps BEGIN in a round trip of its own when prepared statements are off', async () => {
    const unprepared = new PostgresTransactionHost(pool, {
      connection: { preparedStatements: false },
    } as PostgresTransport);
    const trips = await countRoundTrips(pool);
    for (const id of [1, 2]) {
      await unprepared.run(async () => {
        await unprepared.query(INSERT, [id]);
      });
    }
    expect(trips.count()).toBe(2 * 3);
    const { rows } = await pool.query(
      "SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'nestjs_transport%'",
    );
    expect(rows[0].n).toBe(0);
    expect(await itemIds(db.url)).toEqual([1, 2]);
  });

  it('sends nothing for a transaction that runs no statement', async () => {
    const trips = await countRoundTrips(pool);
    await expect(host.run(async () => 42)).resolves.toBe(42);
    await expect(
      host.run(async () => Promise.reject(new Error('nothing to undo'))),
    ).rejects.toThrow('nothing to undo');
    expect(trips.count()).toBe(0);
  });

  it('has BEGIN run before a first statement that fails: the transaction stays open and aborted', async () => {
    await host.run(() => host.query(INSERT, [1])); // BEGIN is prepared on the connection
    let second: unknown;
    await expect(
      host.run(async () => {
        await host.query(INSERT, ['not a number']).catch(() => undefined);
        second = await host.query(INSERT, [2]).catch((error: unknown) => error);
      }),
    ).rejects.toThrow(TransactionAbortedError);
    // 25P02: the statements after the failed one are refused, not committed on their own.
    expect((second as { code?: string }).code).toBe('25P02');
    expect(await itemIds(db.url)).toEqual([1]);
  });

  it('queues BEGIN ahead of queries sent on the raw connection', async () => {
    await host.run(() => host.query(INSERT, [1]));
    await expect(
      host.run(async () => {
        await (host.client as pg.ClientBase).query('INSERT INTO items VALUES (2)');
        throw new Error('undo');
      }),
    ).rejects.toThrow('undo');
    expect(await itemIds(db.url)).toEqual([1]);
  });

  it('still opens the transaction when a parameter of the first statement cannot be serialized', async () => {
    await host.run(() => host.query(INSERT, [1]));
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    let second: unknown;
    await expect(
      host.run(async () => {
        // A text of its own: node-postgres closes the statement whose parameters it could not send.
        await expect(
          host.query('INSERT INTO items (id) VALUES ($1::int)', [circular]),
        ).rejects.toThrow();
        second = await host.query(INSERT, [2]);
        throw new Error('undo');
      }),
    ).rejects.toThrow('undo');
    expect((second as pg.QueryResult).rowCount).toBe(1);
    expect(await itemIds(db.url)).toEqual([1]);
  });

  it('drops the connection when BEGIN was deallocated, so that nothing queued runs outside the transaction', async () => {
    await host.run(() => host.query(INSERT, [1]));
    await pool.query('DEALLOCATE ALL');
    const errors: unknown[] = [];
    await expect(
      host.run(async () => {
        const writes = [host.query(INSERT, [2]), host.query(INSERT, [3])];
        for (const write of writes) errors.push(await write.catch((error: unknown) => error));
      }),
    ).rejects.toThrow();
    expect((errors[0] as { code?: string }).code).toBe('26000');
    expect(errors[1]).toBeInstanceOf(Error);
    expect(await itemIds(db.url)).toEqual([1]);
    // The next transaction gets a fresh connection, which prepares BEGIN again.
    await host.run(() => host.query(INSERT, [4]));
    expect(await itemIds(db.url)).toEqual([1, 4]);
  });
  it('runs no statement outside the transaction when a BEGIN sent on its own fails', async () => {
    await host.run(() => host.query(INSERT, [1]));
    await pool.query('DEALLOCATE ALL');
    // A first statement without parameters cannot carry BEGIN: BEGIN goes ahead of it.
    await expect(
      host.run(async () => {
        await host.query('INSERT INTO items (id) VALUES (2)');
      }),
    ).rejects.toThrow();
    expect(await itemIds(db.url)).toEqual([1]);
    await host.run(() => host.query(INSERT, [3]));
    expect(await itemIds(db.url)).toEqual([1, 3]);
  });

  it('rolls back when the connection is cut after the statement that carried BEGIN', async () => {
    await host.run(() => host.query(INSERT, [1]));
    await expect(
      host.run(async () => {
        await host.query(INSERT, [2]);
        const { rows } = await host.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        await query(db.url, 'SELECT pg_terminate_backend($1)', [rows[0].pid]);
        await host.query(INSERT, [3]);
      }),
    ).rejects.toThrow();
    expect(await itemIds(db.url)).toEqual([1]);
    await host.run(() => host.query(INSERT, [4]));
    expect(await itemIds(db.url)).toEqual([1, 4]);
  });

  it('fails the transaction whose idle connection was cut before its first statement, then recovers', async () => {
    await host.run(() => host.query(INSERT, [1]));
    await query(
      db.url,
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid()`,
    );
    // The pool may notice the cut first and open a new connection; either way nothing is half done.
    await host
      .run(async () => {
        await host.query(INSERT, [2]);
        await host.query(INSERT, [3]);
      })
      .catch(() => undefined);
    const ids = await itemIds(db.url);
    expect([[1], [1, 2, 3]]).toContainEqual(ids);
    await host.run(() => host.query(INSERT, [4]));
    expect(await itemIds(db.url)).toEqual([...ids, 4]);
  });
});
