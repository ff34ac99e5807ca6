import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { startThrowawayPostgres, type ThrowawayPostgres } from '#throwaway-postgres';
import {
  ListenerState,
  POSTGRES_TRANSPORT,
  PostgresContext,
  PostgresStatus,
} from '../../lib/index.js';
import {
  CREATE_HANDLED_TABLE,
  emitAll,
  handledCounts,
  keysOf,
  queueCounts,
  StatusLog,
} from '../helpers/fault-harness.js';
import { Closer } from '../helpers/closer.js';
import { activeHandles, expectNothingLeft } from '../helpers/leaks.js';
import { query, startClient, startServer } from '../helpers/transport.js';
import { waitFor } from '../helpers/wait-for.js';

/** The first message's first attempt writes its row, then waits here until the test opens it. */
const gate: { blocked?: string; open?: () => void } = {};

@Controller()
class RestartController {
  @EventPattern<string>('restart.job', POSTGRES_TRANSPORT)
  async job(@Payload() job: { key: string }, @Ctx() ctx: PostgresContext) {
    await ctx.query('INSERT INTO handled (key, message_id, attempt) VALUES ($1, $2, $3)', [
      job.key,
      ctx.getMessageId(),
      ctx.getAttempt(),
    ]);
    if (gate.blocked === undefined) {
      await new Promise<void>((resolve) => {
        gate.open = resolve;
        gate.blocked = job.key;
      });
    }
  }
}

// A server of its own: stopping the shared test server would break every other test file.
describe('ServerPostgres and ClientPostgres across a PostgreSQL restart', () => {
  let pg: ThrowawayPostgres;
  const closer = new Closer();

  beforeAll(async () => {
    pg = await startThrowawayPostgres({ settings: { fsync: 'off' } });
    await query(pg.url, CREATE_HANDLED_TABLE);
  });

  afterEach(async () => {
    await closer.closeAll();
  });

  afterAll(async () => {
    await pg.destroy();
  });

  it('handles messages pending at the stop and emitted after the start exactly once', async () => {
    const before = activeHandles();
    const leaseMs = 1_000;
    const { app, server } = await startServer(pg.url, [RestartController], {
      group: 'restart',
      // One batch in flight at a time: the blocked one. Everything else stays unclaimed.
      concurrency: 1,
      batchSize: 5,
      leaseMs,
      // Recovery must come from the reconnect (and the end of the lease), not from the sweep.
      sweepIntervalMs: 60_000,
      shutdownTimeoutMs: 1_000,
      listener: {
        heartbeatIntervalMs: 500,
        heartbeatTimeoutMs: 1_000,
        reconnect: { initialDelayMs: 50, maxDelayMs: 400 },
      },
    });
    closer.add(app, (a) => a.close());
    const statuses = new StatusLog(server);
    const client = await startClient(pg.url, {
      listener: { reconnect: { initialDelayMs: 50, maxDelayMs: 400 } },
    });
    closer.add(client, (c) => c.close());
    closer.add(gate, (g) => g.open?.());
    const listener = server.unwrap().listener!;
    await waitFor(() => listener.status.state === ListenerState.Connected);

    const pending = keysOf('before', 100);
    await emitAll(client, 'restart.job', pending);
    const blocked = await waitFor(() => gate.blocked, { message: 'the first handler to start' });
    // Nothing is handled yet: one batch waits in its handler, the rest is unclaimed.
    expect(await handledCounts(pg.url, 'before')).toEqual({ n: 0, distinct: 0 });
    const mark = statuses.mark();

    await pg.stop();
    // The blocked handler's transaction died with the server; let it find out.
    gate.open!();
    await pg.start();
    const emitted = keysOf('after', 100);
    await emitAll(client, 'restart.job', emitted);

    const total = pending.length + emitted.length;
    await waitFor(
      async () =>
        (await handledCounts(pg.url, 'before')).n + (await handledCounts(pg.url, 'after')).n >=
        total,
      { timeoutMs: 20_000, message: `${total} messages handled after the restart` },
    );
    expect(await handledCounts(pg.url, 'before')).toEqual({ n: 100, distinct: 100 });
    expect(await handledCounts(pg.url, 'after')).toEqual({ n: 100, distinct: 100 });
    // The blocked attempt's write rolled back with it; its message ran again afterwards.
    expect(await query(pg.url, 'SELECT attempt FROM handled WHERE key = $1', [blocked])).toEqual([
      { attempt: 2 },
    ]);
    expect(await queueCounts(pg.url)).toEqual({ pending: 0, dead: 0 });
    expect(statuses.since(mark)).toEqual([PostgresStatus.RECONNECTING, PostgresStatus.CONNECTED]);
    expect(listener.status.state).toBe(ListenerState.Connected);

    await closer.closeAll();
    await expectNothingLeft(before, pg.url, 'postgres');
  });
});
