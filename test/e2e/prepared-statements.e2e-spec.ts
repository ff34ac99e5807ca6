import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, type INestMicroservice } from '@nestjs/common';
import { Ctx, EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import pg from 'pg';
import { lastValueFrom } from 'rxjs';
import { Test } from '@nestjs/testing';
import {
  ClientPostgres,
  POSTGRES_TRANSPORT,
  PostgresContext,
  ServerPostgres,
} from '../../lib/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { query } from '../helpers/transport.js';
import { waitFor } from '../helpers/wait-for.js';

@Controller()
class LedgerController {
  @EventPattern<string>('ledger.entry', POSTGRES_TRANSPORT)
  async entry(@Payload() body: { key: string }, @Ctx() ctx: PostgresContext) {
    await ctx.query('INSERT INTO ledger (key) VALUES ($1)', [body.key]);
  }

  @MessagePattern('ledger.count', POSTGRES_TRANSPORT)
  async count(@Ctx() ctx: PostgresContext) {
    const { rows } = await ctx.query('SELECT count(*)::int AS n FROM ledger');
    return rows[0].n;
  }
}

/** Statements prepared in the sessions of a pool of one connection, read through that session. */
async function preparedIn(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query('SELECT count(*)::int AS n FROM pg_prepared_statements');
  return rows[0].n;
}

describe.each([true, false])('preparedStatements: %s', (prepared) => {
  let db: TestDatabase;
  let app: INestMicroservice;
  let serverPool: pg.Pool;
  let clientPool: pg.Pool;
  let client: ClientPostgres;

  beforeAll(async () => {
    db = await createTestDatabase();
    await query(db.url, 'CREATE TABLE ledger (key text NOT NULL)');
    // One connection each, so the session read afterwards is the one that did the work.
    serverPool = new pg.Pool({ connectionString: db.url, max: 1 });
    clientPool = new pg.Pool({ connectionString: db.url, max: 1 });
    const moduleRef = await Test.createTestingModule({ controllers: [LedgerController] }).compile();
    app = moduleRef.createNestMicroservice({
      strategy: new ServerPostgres({
        group: 'ledger',
        pool: serverPool,
        preparedStatements: prepared,
        concurrency: 1,
      }),
      logger: false,
    });
    await app.listen();
    client = new ClientPostgres({ pool: clientPool, preparedStatements: prepared });
    await client.connect();
  });

  afterAll(async () => {
    await client.close();
    await app.close();
    await clientPool.end();
    await serverPool.end();
    await db.drop();
  });

  it('emits, consumes, wakes and replies, preparing statements only when allowed', async () => {
    for (const key of ['a', 'b', 'c']) await lastValueFrom(client.emit('ledger.entry', { key }));
    await Promise.all(
      ['d', 'e', 'f'].map((key) => lastValueFrom(client.emit('ledger.entry', { key }))),
    );
    await waitFor(async () => (await query(db.url, 'SELECT 1 FROM ledger')).length === 6);
    expect(await lastValueFrom(client.send('ledger.count', {}))).toBe(6);

    if (prepared) {
      expect(await preparedIn(clientPool)).toBeGreaterThan(0);
      expect(await preparedIn(serverPool)).toBeGreaterThan(0);
    } else {
      // What a pooler in transaction mode needs: no named statement left in any session.
      expect(await preparedIn(clientPool)).toBe(0);
      expect(await preparedIn(serverPool)).toBe(0);
    }
  });
});
