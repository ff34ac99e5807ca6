import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Controller, type INestMicroservice, Module } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import pg from 'pg';
import { lastValueFrom } from 'rxjs';
import {
  ClientPostgres,
  POSTGRES_TRANSPORT,
  PostgresContext,
  PostgresTransactionHost,
  PostgresTransportModule,
  ServerPostgres,
  type DeadLetterEvent,
} from '../../lib/index.js';
import { UserStatements } from '../../lib/sql/user-statements.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { query } from '../helpers/transport.js';
import { waitFor } from '../helpers/wait-for.js';

const USER_PREFIX = 'nestjs_transport_user_';

/** The user statements prepared in a session, read through that session. */
async function userStatementsIn(session: pg.ClientBase | pg.Pool): Promise<string[]> {
  const { rows } = await session.query<{ statement: string }>(
    `SELECT statement FROM pg_prepared_statements WHERE name LIKE '${USER_PREFIX}%' ORDER BY statement`,
  );
  return rows.map((row) => row.statement);
}

describe('UserStatements on one connection', () => {
  let db: TestDatabase;
  let client: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    await query(db.url, 'CREATE TABLE items (id int PRIMARY KEY, label text)');
    await query(db.url, "INSERT INTO items VALUES (1, 'one'), (2, 'two')");
  });

  beforeEach(async () => {
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
  });

  afterEach(async () => {
    await client.end();
  });

  afterAll(async () => {
    await db.drop();
  });

  it('prepares a text with parameters from its second use on, once per connection', async () => {
    const statements = new UserStatements();
    const text = 'SELECT label FROM items WHERE id = $1';
    const first = await statements.query(client, text, [1]);
    expect(await userStatementsIn(client)).toEqual([]);
    const second = await statements.query(client, text, [2]);
    const third = await statements.query(client, text, [1]);
    expect(await userStatementsIn(client)).toEqual([text]);
    expect([first.rows, second.rows, third.rows]).toEqual([
      [{ label: 'one' }],
      [{ label: 'two' }],
      [{ label: 'one' }],
    ]);
  });

  it('leaves a text without parameters on the simple protocol, several statements included', async () => {
    const statements = new UserStatements();
    for (let i = 0; i < 3; i++) {
      const results = (await statements.query(
        client,
        'SELECT 1 AS a; SELECT 2 AS b',
        undefined,
      )) as unknown as pg.QueryResult[];
      expect(results.map((result) => result.rows)).toEqual([[{ a: 1 }], [{ b: 2 }]]);
    }
    expect(await userStatementsIn(client)).toEqual([]);
  });

  it('names no more texts than its limit, and no text longer than its limit', async () => {
    const statements = new UserStatements({ names: 2, textChars: 60, seenOnce: 100 });
    const texts = [1, 2, 3].map((n) => `SELECT label FROM items WHERE id = $1 AND ${n} = ${n}`);
    const long = `SELECT label FROM items WHERE id = $1 AND '${'x'.repeat(60)}' <> ''`;
    for (let use = 0; use < 3; use++) {
      for (const text of [...texts, long]) {
        expect((await statements.query(client, text, [1])).rows).toEqual([{ label: 'one' }]);
      }
    }
    expect(await userStatementsIn(client)).toEqual(texts.slice(0, 2));
  });

  it('forgets texts seen once when that list is full, so one-off texts never take a name', async () => {
    const statements = new UserStatements({ names: 10, textChars: 1_000, seenOnce: 2 });
    const text = (n: number) => `SELECT label FROM items WHERE id = $1 AND ${n} > 0`;
    await statements.query(client, text(1), [1]);
    await statements.query(client, text(2), [1]);
    // The list holds two texts: a third clears it, so text 1 counts as new again.
    await statements.query(client, text(3), [1]);
    await statements.query(client, text(1), [1]);
    expect(await userStatementsIn(client)).toEqual([]);
    await statements.query(client, text(1), [1]);
    expect(await userStatementsIn(client)).toEqual([text(1)]);
  });

  it('runs a text unnamed for good once PostgreSQL refuses its prepared statement', async () => {
    await query(db.url, 'CREATE TABLE shapes (id int PRIMARY KEY, sides int)');
    await query(db.url, 'INSERT INTO shapes VALUES (1, 3)');
    const statements = new UserStatements();
    const text = 'SELECT * FROM shapes WHERE id = $1';
    await statements.query(client, text, [1]);
    expect((await statements.query(client, text, [1])).rows).toEqual([{ id: 1, sides: 3 }]);

    await query(db.url, 'ALTER TABLE shapes ADD COLUMN colour text');
    const refused = await statements.query(client, text, [1]).catch((error: unknown) => error);
    expect((refused as { code?: string }).code).toBe('0A000');

    for (let i = 0; i < 2; i++) {
      expect((await statements.query(client, text, [1])).rows).toEqual([
        { id: 1, sides: 3, colour: null },
      ]);
    }
  });
});

const handled: Array<{ key: string; attempt: number; sides: number }> = [];

@Controller()
class ShapesController {
  /** Reads with `SELECT *`, the statement a table change invalidates. */
  @EventPattern<string>('shape.seen', POSTGRES_TRANSPORT)
  async seen(@Payload() body: { key: string }, @Ctx() ctx: PostgresContext) {
    const { rows } = await ctx.query<{ sides: number }>('SELECT * FROM shapes WHERE id = $1', [1]);
    await ctx.query('INSERT INTO seen (key) VALUES ($1)', [body.key]);
    handled.push({ key: body.key, attempt: ctx.getAttempt(), sides: rows[0].sides });
  }
}

describe('handlers querying through PostgresContext', () => {
  let db: TestDatabase;
  let app: INestMicroservice;
  let serverPool: pg.Pool;
  let client: ClientPostgres;
  const deadLetters: DeadLetterEvent[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    await query(db.url, 'CREATE TABLE shapes (id int PRIMARY KEY, sides int)');
    await query(db.url, 'INSERT INTO shapes VALUES (1, 4)');
    await query(db.url, 'CREATE TABLE seen (key text PRIMARY KEY)');
    // One connection, so every handler runs on the session read afterwards.
    serverPool = new pg.Pool({ connectionString: db.url, max: 1 });
    const moduleRef = await Test.createTestingModule({ controllers: [ShapesController] }).compile();
    const server = new ServerPostgres({
      group: 'shapes',
      pool: serverPool,
      concurrency: 1,
      retryDelayMs: 20,
      maxRetryDelayMs: 50,
    });
    server.on('deadLetter', (event) => deadLetters.push(event));
    app = moduleRef.createNestMicroservice({ strategy: server, logger: false });
    await app.listen();
    client = new ClientPostgres({ connectionString: db.url });
    await client.connect();
  });

  afterAll(async () => {
    await client.close();
    await app.close();
    await serverPool.end();
    await db.drop();
  });

  it('prepares the handlers’ statements, and a table change under one costs a retry, not a message', async () => {
    for (const key of ['a', 'b']) {
      await lastValueFrom(client.emit('shape.seen', { key }));
      await waitFor(() => handled.some((h) => h.key === key));
    }
    expect(await userStatementsIn(serverPool)).toEqual([
      'INSERT INTO seen (key) VALUES ($1)',
      'SELECT * FROM shapes WHERE id = $1',
    ]);

    await query(db.url, 'ALTER TABLE shapes ADD COLUMN colour text');
    await lastValueFrom(client.emit('shape.seen', { key: 'c' }));
    await waitFor(async () => (await query(db.url, "SELECT 1 FROM seen WHERE key = 'c'")).length);

    expect(handled.filter((h) => h.key === 'c')).toEqual([{ key: 'c', attempt: 2, sides: 4 }]);
    expect(deadLetters).toEqual([]);
    expect(await query(db.url, 'SELECT key FROM seen ORDER BY key')).toEqual([
      { key: 'a' },
      { key: 'b' },
      { key: 'c' },
    ]);
  });
});

describe('PostgresTransactionHost.query', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
    await query(db.url, 'CREATE TABLE notes (body text)');
  });

  afterAll(async () => {
    await db.drop();
  });

  it.each([true, false])(
    'prepares repeated texts unless the module says preparedStatements: false (%s)',
    async (prepared) => {
      const pool = new pg.Pool({ connectionString: db.url, max: 1 });
      @Module({
        imports: [PostgresTransportModule.forRoot({ pool, preparedStatements: prepared })],
      })
      class AppModule {}
      const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      try {
        const host = app.get(PostgresTransactionHost);
        const text = `INSERT INTO notes (body) VALUES ($1) -- ${prepared}`;
        const notes = async () =>
          (await query(db.url, 'SELECT count(*)::int AS n FROM notes'))[0].n;
        const before = await notes();
        await host.run(async () => {
          for (const body of ['x', 'y', 'z']) await host.query(text, [body]);
        });
        await host.query(text, ['outside a transaction']);
        expect(await userStatementsIn(pool)).toEqual(prepared ? [text] : []);
        expect((await notes()) - before).toBe(4);
      } finally {
        await app.close();
        await pool.end();
      }
    },
  );
});
