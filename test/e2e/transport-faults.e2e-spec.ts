import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, type INestMicroservice, type Type } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import {
  ClientPostgres,
  ListenerState,
  POSTGRES_TRANSPORT,
  PostgresContext,
  PostgresStatus,
  type ServerPostgres,
  type ServerPostgresOptions,
} from '../../lib/index.js';
import { Closer } from '../helpers/closer.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import {
  CREATE_HANDLED_TABLE,
  emitAll,
  holdClaimOnLock,
  handledCounts,
  JOB_PATTERN,
  JobController,
  keysOf,
  StatusLog,
} from '../helpers/fault-harness.js';
import { activeHandles, expectNothingLeft } from '../helpers/leaks.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { query, startClient, startServer } from '../helpers/transport.js';
import { waitFor } from '../helpers/wait-for.js';

/** Attempt 1 of a "fault.stuck" message writes its row, reports its backend, then waits. */
const stuck = {
  backendPid: undefined as number | undefined,
  release: undefined as (() => void) | undefined,
};

@Controller()
class StuckController {
  @EventPattern<string>('fault.stuck', POSTGRES_TRANSPORT)
  async stuck(@Payload() job: { key: string }, @Ctx() ctx: PostgresContext) {
    await ctx.query('INSERT INTO handled (key, message_id, attempt) VALUES ($1, $2, $3)', [
      job.key,
      ctx.getMessageId(),
      ctx.getAttempt(),
    ]);
    if (ctx.getAttempt() > 1) return;
    const { rows } = await ctx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    await new Promise<void>((resolve) => {
      stuck.release = resolve;
      stuck.backendPid = rows[0].pid;
    });
  }
}

const HEARTBEAT_INTERVAL_MS = 300;
const HEARTBEAT_TIMEOUT_MS = 500;

interface Rig {
  app: INestMicroservice;
  server: ServerPostgres;
  client: ClientPostgres;
  proxy: TcpProxy;
  statuses: StatusLog;
}

describe('ServerPostgres when its connections fail', () => {
  let db: TestDatabase;
  const closer = new Closer();

  /**
   * A consumer whose LISTEN connection (only) goes through a fault proxy, and a producer that
   * connects directly. The sweep is a minute away, so whatever is handled within a test was found
   * by a NOTIFY or by the catch-up after a reconnect.
   */
  async function startRig(
    options: Partial<ServerPostgresOptions> = {},
    controllers: Type[] = [JobController],
  ): Promise<Rig> {
    const proxy = await TcpProxy.start({ target: { port: Number(new URL(db.url).port) } });
    closer.add(proxy, (p) => p.close());
    const { app, server } = await startServer(db.url, controllers, {
      group: 'faults',
      listenConnectionString: proxy.urlFor(db.url),
      sweepIntervalMs: 60_000,
      listener: {
        heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
        heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS,
        connectTimeoutMs: 2_000,
        reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
      },
      ...options,
    });
    closer.add(app, (a) => a.close());
    const statuses = new StatusLog(server);
    const client = closer.add(await startClient(db.url), (c) => c.close());
    await waitFor(() => server.unwrap().listener?.status.state === ListenerState.Connected, {
      message: 'the consumer to be listening',
    });
    return { app, server, client, proxy, statuses };
  }

  /** Waits until `count` rows with `prefix` were handled, then returns the counts. */
  async function handled(prefix: string, count: number) {
    await waitFor(async () => (await handledCounts(db.url, prefix)).n >= count, {
      timeoutMs: 20_000,
      message: `${count} "${prefix}" messages handled`,
    });
    return handledCounts(db.url, prefix);
  }

  beforeAll(async () => {
    db = await createTestDatabase('transport_faults');
    await query(db.url, CREATE_HANDLED_TABLE);
  });

  afterEach(async () => {
    await closer.closeAll();
  });

  afterAll(async () => {
    await db.drop();
  });

  it('handles every message emitted while its LISTEN backend was terminated, exactly once', async () => {
    const before = activeHandles();
    const rig = await startRig();
    await emitAll(rig.client, JOB_PATTERN, keysOf('warm-killed', 1));
    await handled('warm-killed', 1);
    const listener = rig.server.unwrap().listener!;
    const killed = listener.backendPid;
    const mark = rig.statuses.mark();

    // Reconnect attempts are refused until the gap's messages are committed, so every one of
    // them is emitted while nobody listens.
    rig.proxy.refuseNewConnections();
    await query(db.url, 'SELECT pg_terminate_backend($1)', [killed]);
    await waitFor(() => rig.statuses.last === PostgresStatus.RECONNECTING, {
      message: 'the server to report reconnecting',
    });
    const gap = keysOf('killed', 300);
    await emitAll(rig.client, JOB_PATTERN, gap);
    // Nothing can have woken the consumer: the NOTIFYs went to a dead session.
    expect(await handledCounts(db.url, 'killed')).toEqual({ n: 0, distinct: 0 });

    rig.proxy.refuseNewConnections(false);
    expect(await handled('killed', gap.length)).toEqual({ n: gap.length, distinct: gap.length });
    expect(rig.statuses.since(mark)).toEqual([
      PostgresStatus.RECONNECTING,
      PostgresStatus.CONNECTED,
    ]);
    expect(listener.backendPid).not.toBe(killed);

    await closer.closeAll();
    await expectNothingLeft(before, db.url, db.name);
  });

  it('detects a blackholed LISTEN connection within its heartbeat bound and catches up after heal()', async () => {
    const before = activeHandles();
    const rig = await startRig();
    await emitAll(rig.client, JOB_PATTERN, keysOf('warm-blackhole', 1));
    await handled('warm-blackhole', 1);
    const mark = rig.statuses.mark();

    const blackholedAt = Date.now();
    rig.proxy.blackhole();
    // Emitted before the loss is detected: their NOTIFYs are held by the proxy, then dropped
    // with the session.
    const early = emitAll(rig.client, JOB_PATTERN, keysOf('blackhole-early', 100));
    const lost = await waitFor(() => rig.statuses.first(PostgresStatus.RECONNECTING, mark), {
      timeoutMs: 5_000,
      message: 'the blackhole to be detected',
    });
    // Only the heartbeat can notice (nothing closed the socket); the margin is for a loaded
    // machine's timers.
    expect(lost.at - blackholedAt).toBeLessThanOrEqual(
      HEARTBEAT_INTERVAL_MS + HEARTBEAT_TIMEOUT_MS + 700,
    );
    await early;
    // Emitted after detection, while reconnect attempts hang in the blackhole.
    await emitAll(rig.client, JOB_PATTERN, keysOf('blackhole-late', 200));
    expect(await handledCounts(db.url, 'blackhole')).toEqual({ n: 0, distinct: 0 });

    rig.proxy.heal();
    expect(await handled('blackhole-early', 100)).toEqual({ n: 100, distinct: 100 });
    expect(await handled('blackhole-late', 200)).toEqual({ n: 200, distinct: 200 });
    expect(rig.statuses.since(mark)).toEqual([
      PostgresStatus.RECONNECTING,
      PostgresStatus.CONNECTED,
    ]);

    await closer.closeAll();
    await expectNothingLeft(before, db.url, db.name);
  });

  // A batch rolled back because its connection died leaves its rows leased (run_at = claim +
  // leaseMs). Nothing but the server itself knows when that lease ends, so it must wake the group
  // then; otherwise the messages wait for the sweep (a minute here) or for unrelated traffic.
  it('retries a batch whose connection died mid-handler when its lease ends, not at the next sweep', async () => {
    const before = activeHandles();
    const leaseMs = 1_000;
    const rig = await startRig({ group: 'stuck', leaseMs }, [StuckController]);
    closer.add(stuck, (s) => s.release?.());
    await emitAll(rig.client, 'fault.stuck', ['stuck-0']);
    const pid = await waitFor(() => stuck.backendPid, { message: 'the handler to start' });

    await query(db.url, 'SELECT pg_terminate_backend($1)', [pid]);
    stuck.release!();
    const [row] = await waitFor(
      async () => {
        const rows = await query(db.url, "SELECT attempt FROM handled WHERE key = 'stuck-0'");
        return rows.length > 0 ? rows : undefined;
      },
      { timeoutMs: leaseMs + 5_000, message: 'the rolled-back message to be retried' },
    );
    // Attempt 1's row rolled back with its batch; attempt 2 ran once the lease was over.
    expect(row).toEqual({ attempt: 2 });
    expect(await handledCounts(db.url, 'stuck')).toEqual({ n: 1, distinct: 1 });
    expect(rig.server.unwrap().listener?.status.state).toBe(ListenerState.Connected);

    await closer.closeAll();
    await expectNothingLeft(before, db.url, db.name);
  });

  // The claim runs on the connection the batch then uses, checked out from the pool. A
  // checked-out connection that is reset emits 'error', which would end the process were nobody
  // listening for it.
  it('survives the reset of a claim connection while the claim waits, and claims again', async () => {
    const before = activeHandles();
    const poolProxy = await TcpProxy.start({ target: { port: Number(new URL(db.url).port) } });
    closer.add(poolProxy, (p) => p.close());
    const { app } = await startServer(poolProxy.urlFor(db.url), [JobController], {
      group: 'claim-cut',
      listenConnectionString: db.url,
      sweepIntervalMs: 100,
      leaseMs: 1_000,
    });
    closer.add(app, (a) => a.close());
    const client = closer.add(await startClient(db.url), (c) => c.close());
    await emitAll(client, JOB_PATTERN, keysOf('warm-claim-cut', 1));
    await handled('warm-claim-cut', 1);

    // The next sweep's claim waits for the lock.
    const locker = closer.add(await holdClaimOnLock(db.url, db.name), (c) => c.end());
    // Its INSERT waits for the lock as well.
    const sent = emitAll(client, JOB_PATTERN, keysOf('claim-cut', 1));
    poolProxy.cutAll();
    await locker.query('COMMIT');
    await sent;

    expect(await handled('claim-cut', 1)).toEqual({ n: 1, distinct: 1 });

    await closer.closeAll();
    await expectNothingLeft(before, db.url, db.name);
  });
});
