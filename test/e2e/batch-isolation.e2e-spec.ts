import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, type INestMicroservice } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import {
  ClientPostgres,
  POSTGRES_TRANSPORT,
  PostgresContext,
  PostgresExceptionFilter,
} from '../../lib/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { emitTogether, query, startClient, startServer } from '../helpers/transport.js';
import { waitFor } from '../helpers/wait-for.js';

/** Every handler run, in order: key and attempt. */
const runs: Array<{ key: string; attempt: number }> = [];

@Controller()
class BatchController {
  /**
   * Writes one row in the consume transaction. A key starting with "fail" throws on its first
   * attempt after writing; one starting with "swallow" hides a failed statement on its first;
   * one starting with "commit" wrongly commits the consume transaction on its first. One
   * starting with "quiet" sends no statement; one starting with "early" throws on its first
   * attempt before sending any.
   */
  @EventPattern<string>('entry', POSTGRES_TRANSPORT)
  async entry(@Payload() body: { key: string }, @Ctx() ctx: PostgresContext) {
    runs.push({ key: body.key, attempt: ctx.getAttempt() });
    if (body.key.startsWith('quiet')) return;
    if (body.key.startsWith('early') && ctx.getAttempt() === 1) {
      throw new Error(`first attempt of ${body.key} fails before writing`);
    }
    await ctx.query('INSERT INTO ledger (key) VALUES ($1)', [body.key]);
    if (ctx.getAttempt() > 1) return;
    if (body.key.startsWith('fail')) throw new Error(`first attempt of ${body.key} fails`);
    if (body.key.startsWith('swallow')) await ctx.query('SELECT 1 / 0').catch(() => undefined);
    if (body.key.startsWith('commit')) await ctx.query('COMMIT');
  }
}

function runsOf(key: string): number[] {
  return runs.filter((run) => run.key === key).map((run) => run.attempt);
}

describe('batch isolation: optimistic batches, replayed with savepoints after a failure', () => {
  let db: TestDatabase;
  let client: ClientPostgres;
  const apps: INestMicroservice[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    await query(db.url, 'CREATE TABLE ledger (key text NOT NULL)');
    client = await startClient(db.url);
  });

  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
  });

  afterAll(async () => {
    await client.close();
    await db.drop();
  });

  /**
   * Emits `keys` while no consumer of `group` runs, so that the next one claims them all in ONE
   * batch, in this order, as its first batch.
   */
  async function backlogFor(group: string, keys: string[]): Promise<void> {
    const first = await startServer(db.url, [BatchController], { group });
    await first.app.close();
    for (const key of keys) await lastValueFrom(client.emit('entry', { key }));
  }

  /** Emits `keys` in one transaction, so that a running consumer claims them together. */
  async function emitEntries(keys: string[]): Promise<void> {
    await emitTogether(
      db.url,
      client,
      'entry',
      keys.map((key) => ({ key })),
    );
  }

  async function consume(group: string, url = db.url): Promise<void> {
    const { app } = await startServer(
      url,
      [BatchController],
      { group, retryDelayMs: 20, maxRetryDelayMs: 20, leaseMs: 300 },
      [],
      (microservice) => microservice.useGlobalFilters(new PostgresExceptionFilter()),
    );
    apps.push(app);
  }

  async function ledgerKeys(keys: string[]): Promise<string[]> {
    const rows = await query(db.url, 'SELECT key FROM ledger WHERE key = ANY($1) ORDER BY key', [
      keys,
    ]);
    return rows.map((row) => row.key);
  }

  async function pending(group: string): Promise<number> {
    const [row] = await query(
      db.url,
      `SELECT count(*)::int AS n FROM nestjs_transport.messages
       WHERE recipient = $1 AND consumed_at IS NULL AND dead_at IS NULL`,
      [group],
    );
    return row.n;
  }

  /** Writes `keys` as a backlog for `group`, then consumes it, retries included. */
  async function drainBacklog(group: string, keys: string[], url = db.url): Promise<void> {
    await backlogFor(group, keys);
    await consume(group, url);
    await waitFor(async () => (await pending(group)) === 0, {
      message: 'the batch and the retry to be consumed',
    });
  }

  it('replays a batch after a throwing handler: only the failed message loses its writes', async () => {
    const keys = ['a-1', 'a-2', 'fail-a', 'a-4', 'a-5'];
    await drainBacklog('optimistic-throw', keys);

    // The first run had no savepoints, so the failure rolled back a-1 and a-2 too: they ran
    // again in the replay; the failed handler did not run again until its retry.
    expect(runsOf('a-1')).toEqual([1, 1]);
    expect(runsOf('a-2')).toEqual([1, 1]);
    expect(runsOf('fail-a')).toEqual([1, 2]);
    expect(runsOf('a-4')).toEqual([1]);
    expect(runsOf('a-5')).toEqual([1]);
    expect(await ledgerKeys(keys)).toEqual([...keys].sort());
    const [failed] = await query(
      db.url,
      `SELECT attempts, last_error FROM nestjs_transport.messages
       WHERE recipient = 'optimistic-throw' AND payload::text LIKE '%fail-a%'`,
    );
    expect(failed.attempts).toBe(2);
    expect(failed.last_error).toContain('first attempt of fail-a fails');
  });

  it('places a swallowed failed statement on the handler that swallowed it', async () => {
    const keys = ['b-1', 'swallow-b', 'b-3'];
    await drainBacklog('optimistic-swallow', keys);

    expect(runsOf('b-1')).toEqual([1, 1]);
    expect(runsOf('swallow-b')).toEqual([1, 2]);
    expect(runsOf('b-3')).toEqual([1]);
    expect(await ledgerKeys(keys)).toEqual([...keys].sort());
    const [swallowed] = await query(
      db.url,
      `SELECT last_error FROM nestjs_transport.messages
       WHERE recipient = 'optimistic-swallow' AND payload::text LIKE '%swallow-b%'`,
    );
    expect(swallowed.last_error).toBe(
      'transaction aborted: a statement failed and the handler went on',
    );
  });

  it('places a swallowed failure on its handler when the status arrives after the error', async () => {
    // The server's ReadyForQuery, which carries the aborted status, reaches the consumer 50 ms
    // after the error that the handler already caught and moved past.
    const proxy = await TcpProxy.start({
      target: { port: Number(new URL(db.url).port) },
      holdAfterErrorMs: 50,
    });
    try {
      const keys = ['f-1', 'swallow-f', 'f-3'];
      await drainBacklog('late-status', keys, proxy.urlFor(db.url));

      expect(runsOf('f-1')).toEqual([1, 1]);
      expect(runsOf('swallow-f')).toEqual([1, 2]);
      expect(runsOf('f-3')).toEqual([1]);
      expect(await ledgerKeys(keys)).toEqual([...keys].sort());
    } finally {
      for (const app of apps.splice(0)) await app.close();
      await proxy.close();
    }
  });

  it('isolates each message from the start in the batches after a failure', async () => {
    await backlogFor('isolated-after-failure', ['c-1', 'fail-c1', 'c-3']);
    await consume('isolated-after-failure');
    await waitFor(async () => (await pending('isolated-after-failure')) === 0);
    expect(runsOf('c-1')).toEqual([1, 1]);

    // The same server's next batch fails too, but runs in savepoints from its start: no handler
    // runs twice. One transaction emits it, so that it is claimed as one batch.
    const keys = ['d-1', 'd-2', 'fail-d', 'd-4'];
    runs.length = 0;
    await emitEntries(keys);
    await waitFor(async () => (await pending('isolated-after-failure')) === 0, {
      message: 'the second batch and its retry to be consumed',
    });
    expect(runsOf('d-1')).toEqual([1]);
    expect(runsOf('d-2')).toEqual([1]);
    expect(runsOf('fail-d')).toEqual([1, 2]);
    expect(runsOf('d-4')).toEqual([1]);
    expect(await ledgerKeys(keys)).toEqual([...keys].sort());
  });

  it('keeps each message to its own savepoint when messages send nothing or fail before sending', async () => {
    // A failed batch first: the batches after it run in savepoints from their start.
    await backlogFor('savepoints', ['t-1', 'fail-t']);
    await consume('savepoints');
    await waitFor(async () => (await pending('savepoints')) === 0);

    const batches = [
      // A message that sent nothing lies between one that wrote and one that fails.
      ['g-1', 'quiet-g', 'fail-g', 'g-4'],
      // The first message sends nothing; one fails before sending anything, right after one
      // that wrote.
      ['quiet-h', 'h-1', 'early-h', 'h-3'],
      // One swallows a failed statement.
      ['s-1', 'swallow-s', 's-3'],
    ];
    for (const keys of batches) {
      runs.length = 0;
      await emitEntries(keys);
      await waitFor(async () => (await pending('savepoints')) === 0, {
        message: `the batch ${keys.join(', ')} and its retry to be consumed`,
      });
      // Savepoints from the start: no message ran twice but the failed one, at its retry.
      const failed = keys.find((key) => /^(fail|early|swallow)/.test(key))!;
      for (const key of keys) expect(runsOf(key)).toEqual(key === failed ? [1, 2] : [1]);
      const writers = keys.filter((key) => !key.startsWith('quiet'));
      expect(await ledgerKeys(keys)).toEqual([...writers].sort());
    }
  });

  it('rolls back a batch whose handler committed the consume transaction, and redelivers', async () => {
    await backlogFor('handler-commits', ['e-1', 'commit-e', 'e-3']);
    await consume('handler-commits');
    await waitFor(async () => (await pending('handler-commits')) === 0, {
      message: 'the batch to come back after its lease and be consumed',
    });
    // Not settled by the broken run: every message of the batch came back and ran again.
    expect(runsOf('commit-e')).toEqual([1, 2]);
    expect(runsOf('e-3')).toEqual([2]);
    const rows = await query(
      db.url,
      `SELECT attempts FROM nestjs_transport.messages
       WHERE recipient = 'handler-commits' ORDER BY id`,
    );
    expect(rows.map((r) => r.attempts)).toEqual([2, 2, 2]);
  });
});
