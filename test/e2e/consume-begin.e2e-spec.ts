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
  ServerPostgres,
} from '../../lib/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { watchQueries } from '../helpers/watched-queries.js';
import { emitTogether, query, startClient } from '../helpers/transport.js';
import { waitFor } from '../helpers/wait-for.js';

/** Every handler run: key and attempt. */
const runs: Array<{ key: string; attempt: number }> = [];

@Controller()
class LedgerController {
  /**
   * Writes one row in the consume transaction. On its first attempt, a key starting with "raw"
   * writes through the raw connection and then throws; one starting with "swallow" runs a
   * failing statement as its first and hides the error; one starting with "idle" runs nothing.
   */
  @EventPattern<string>('entry', POSTGRES_TRANSPORT)
  async entry(@Payload() body: { key: string }, @Ctx() ctx: PostgresContext) {
    runs.push({ key: body.key, attempt: ctx.getAttempt() });
    const first = ctx.getAttempt() === 1;
    if (first && body.key.startsWith('idle')) return;
    if (first && body.key.startsWith('raw')) {
      await ctx.getClient().query(`INSERT INTO ledger (key) VALUES ('${body.key}')`);
      throw new Error(`first attempt of ${body.key} fails`);
    }
    if (first && body.key.startsWith('swallow')) {
      await ctx.query('SELECT 1 / $1::int', [0]).catch(() => undefined);
      return;
    }
    await ctx.query('INSERT INTO ledger (key) VALUES ($1)', [body.key]);
  }
}

/** The statements a pool's connections are asked to run, as their texts. */
function recordQueries(pool: pg.Pool): { texts: string[]; connections: () => number } {
  const texts: string[] = [];
  let connections = 0;
  pool.on('connect', () => connections++);
  watchQueries(pool, (text) => texts.push(text));
  return { texts, connections: () => connections };
}

async function ledger(url: string): Promise<string[]> {
  const rows = await query<{ key: string }>(url, 'SELECT key FROM ledger ORDER BY key');
  return rows.map((row) => row.key);
}

describe('consume transaction: BEGIN leaves with the first statement, COMMIT with the settle', () => {
  let db: TestDatabase;
  let client: ClientPostgres;
  let pool: pg.Pool;
  let app: INestMicroservice;
  let server: ServerPostgres;
  let recorded: ReturnType<typeof recordQueries>;

  beforeAll(async () => {
    db = await createTestDatabase();
    await query(db.url, 'CREATE TABLE ledger (key text NOT NULL)');
    client = await startClient(db.url);
  });

  beforeEach(async () => {
    runs.length = 0;
    await query(db.url, 'TRUNCATE ledger');
    pool = new pg.Pool({ connectionString: db.url, max: 4 });
    recorded = recordQueries(pool);
    const moduleRef = await Test.createTestingModule({ controllers: [LedgerController] }).compile();
    app = moduleRef.createNestMicroservice({
      strategy: (server = new ServerPostgres({
        pool,
        group: 'ledger',
        concurrency: 1,
        retryDelayMs: 10,
        maxRetryDelayMs: 10,
      })),
      logger: false,
    });
    await app.listen();
    // Start-up ran migrations in a transaction of their own.
    recorded.texts.length = 0;
  });

  afterEach(async () => {
    await app.close();
    await pool.end();
  });

  afterAll(async () => {
    await client.close();
    await db.drop();
  });

  it('sends no BEGIN or COMMIT of its own once a connection has prepared them', async () => {
    const keys = Array.from({ length: 12 }, (_, i) => `k${String(i).padStart(2, '0')}`);
    const outcomes: string[] = [];
    const subscription = server.outcomes$.subscribe((outcome) => outcomes.push(outcome.type));
    for (const key of keys) {
      await lastValueFrom(client.emit('entry', { key }));
      await waitFor(() => runs.some((run) => run.key === key));
    }
    await waitFor(async () => (await ledger(db.url)).length === keys.length);
    // Every batch was seen to commit: a folded COMMIT reports like a separate one.
    await waitFor(() => outcomes.length === keys.length);
    subscription.unsubscribe();
    expect(outcomes).toEqual(keys.map(() => 'handled'));
    const settles = recorded.texts.filter((text) => text.includes('consumed_at = CASE')).length;
    const begins = recorded.texts.filter(
      (text) => text.trim().startsWith('BEGIN') || text === 'nestjs_transport_begin',
    ).length;
    const commits = recorded.texts.filter(
      (text) => text === 'COMMIT' || text === 'nestjs_transport_commit',
    ).length;
    expect(settles).toBeGreaterThanOrEqual(keys.length);
    // Each connection's first transaction prepares BEGIN and COMMIT; every later one carries
    // BEGIN with its first statement and COMMIT with its settle.
    expect(begins).toBeLessThanOrEqual(recorded.connections());
    expect(commits).toBeLessThanOrEqual(recorded.connections());
    expect(recorded.connections()).toBeLessThan(keys.length);
  });

  it('sends the savepoints of a batch isolated message by message with its statements', async () => {
    // Each batch is emitted in one transaction that also marks its messages as attempted once,
    // so that the consumer claims them as one batch of redeliveries, run in savepoints.
    const batches = 3;
    const size = 5;
    for (let b = 0; b < batches; b++) {
      const keys = Array.from({ length: size }, (_, i) => `iso-${b}-${i}`);
      await emitTogether(
        db.url,
        client,
        'entry',
        keys.map((key) => ({ key })),
        (connection) =>
          connection.query(
            'UPDATE nestjs_transport.messages SET attempts = 1 WHERE consumed_at IS NULL',
          ),
      );
      await waitFor(async () => (await ledger(db.url)).length === (b + 1) * size);
    }
    expect(runs.map((run) => run.attempt)).toEqual(runs.map(() => 2));
    // Sent on their own: BEGIN with the first savepoint (BEGIN_BATCH), RELEASE and SAVEPOINT
    // (together or as the statements that prepare them on a connection).
    const alone = recorded.texts.filter((text) =>
      /^(BEGIN; SAVEPOINT|RELEASE SAVEPOINT|SAVEPOINT|nestjs_transport_(savepoint|release))/.test(
        text.trim(),
      ),
    ).length;
    // A connection's first isolated batch sends them on their own while it prepares them
    // (SAVEPOINT, then RELEASE and SAVEPOINT); every later message carries them with its
    // statement. Sent on their own, they would be one per message.
    expect(alone).toBeLessThanOrEqual(3 * recorded.connections());
    expect(3 * recorded.connections()).toBeLessThan(batches * size);
  });

  it('runs what a handler sends on the raw connection inside the consume transaction', async () => {
    await lastValueFrom(client.emit('entry', { key: 'raw-1' }));
    await waitFor(() => runs.filter((run) => run.key === 'raw-1').length === 2);
    await waitFor(async () => (await ledger(db.url)).length > 0);
    // The first attempt's raw write rolled back with it; only the retry's row is kept.
    expect(await ledger(db.url)).toEqual(['raw-1']);
  });

  it('fails a handler whose first statement failed and was swallowed, and retries it', async () => {
    await lastValueFrom(client.emit('entry', { key: 'swallow-1' }));
    await waitFor(async () => (await ledger(db.url)).length > 0);
    expect(runs.filter((run) => run.key === 'swallow-1').map((run) => run.attempt)).toEqual([1, 2]);
    expect(await ledger(db.url)).toEqual(['swallow-1']);
  });

  it('settles a message whose handler ran no statement, with BEGIN carried by the settle', async () => {
    await lastValueFrom(client.emit('entry', { key: 'idle-1' }));
    await waitFor(async () => {
      const [row] = await query<{ done: boolean }>(
        db.url,
        `SELECT consumed_at IS NOT NULL AS done FROM nestjs_transport.messages
         WHERE kind = 'event' AND payload::text LIKE '%idle-1%'`,
      );
      return row?.done === true;
    });
    expect(runs.filter((run) => run.key === 'idle-1').map((run) => run.attempt)).toEqual([1]);
    expect(await ledger(db.url)).toEqual([]);
  });
});
