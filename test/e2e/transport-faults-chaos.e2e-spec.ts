import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { ListenerState, type ServerPostgres } from '../../lib/index.js';
import { Closer } from '../helpers/closer.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import {
  CREATE_HANDLED_TABLE,
  emitAll,
  handledCounts,
  JOB_PATTERN,
  JobController,
  keysOf,
  queueCounts,
} from '../helpers/fault-harness.js';
import { activeHandles, expectNothingLeft } from '../helpers/leaks.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { query, startClient, startServer } from '../helpers/transport.js';
import { waitFor } from '../helpers/wait-for.js';

const MESSAGES = 10_000;
const EMITTERS = 10;
const CONSUMERS = 2;
const MIN_CUTS = 5;

/** Calls `cut` every 100–300 ms (about 200 on average) until the returned stop() is called. */
function cutRepeatedly(cut: () => void): { stop(): void; readonly cuts: number } {
  let timer: NodeJS.Timeout | undefined;
  let cuts = 0;
  const schedule = () => {
    timer = setTimeout(
      () => {
        cut();
        cuts += 1;
        schedule();
      },
      100 + Math.random() * 200,
    );
  };
  schedule();
  return {
    stop: () => clearTimeout(timer),
    get cuts() {
      return cuts;
    },
  };
}

describe('ServerPostgres while its LISTEN connections are cut over and over', () => {
  let db: TestDatabase;
  const closer = new Closer();

  beforeAll(async () => {
    db = await createTestDatabase('transport_chaos');
    await query(db.url, CREATE_HANDLED_TABLE);
  });

  afterEach(async () => {
    await closer.closeAll();
  });

  afterAll(async () => {
    await db.drop();
  });

  it('handles 10,000 messages exactly once and ends clean', async () => {
    const before = activeHandles();
    // Each consumer LISTENs through a proxy of its own, so each has its own listener to lose.
    const consumers: Array<{ server: ServerPostgres; proxy: TcpProxy; reconnects: number }> = [];
    for (let i = 0; i < CONSUMERS; i++) {
      const proxy = await TcpProxy.start({ target: { port: Number(new URL(db.url).port) } });
      closer.add(proxy, (p) => p.close());
      const { app, server } = await startServer(db.url, [JobController], {
        group: 'chaos',
        listenConnectionString: proxy.urlFor(db.url),
        batchSize: 20,
        // Only NOTIFYs and the catch-up after each reconnect can find the messages.
        sweepIntervalMs: 60_000,
        listener: {
          heartbeatIntervalMs: 500,
          heartbeatTimeoutMs: 1_000,
          reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
        },
      });
      closer.add(app, (a) => a.close());
      const consumer = { server, proxy, reconnects: 0 };
      const ready = server.unwrap().listener!.ready$.subscribe(({ reconnect }) => {
        if (reconnect) consumer.reconnects += 1;
      });
      closer.add(ready, (r) => r.unsubscribe());
      consumers.push(consumer);
    }
    const client = await startClient(db.url);
    closer.add(client, (c) => c.close());
    const listeners = consumers.map(({ server }) => server.unwrap().listener!);
    expect(new Set(listeners).size).toBe(CONSUMERS);
    await waitFor(() => listeners.every((l) => l.status.state === ListenerState.Connected));

    const chaos = consumers.map(({ proxy }) => cutRepeatedly(() => proxy.cutAll()));
    try {
      await emitAll(client, JOB_PATTERN, keysOf('chaos', MESSAGES), EMITTERS);
      // However fast the emitters were, every listener was cut a few times.
      await waitFor(() => chaos.every((c) => c.cuts >= MIN_CUTS));
    } finally {
      for (const c of chaos) c.stop();
    }

    await waitFor(async () => (await handledCounts(db.url, 'chaos')).n >= MESSAGES, {
      timeoutMs: 30_000,
      message: `${MESSAGES} messages handled`,
    });
    expect(await handledCounts(db.url, 'chaos')).toEqual({ n: MESSAGES, distinct: MESSAGES });
    expect(await queueCounts(db.url)).toEqual({ pending: 0, dead: 0 });
    await waitFor(() => listeners.every((l) => l.status.state === ListenerState.Connected), {
      message: 'every listener to be connected again',
    });

    // Each listener came back, and caught up, at least once after a cut.
    for (const { reconnects } of consumers) expect(reconnects).toBeGreaterThanOrEqual(1);

    await closer.closeAll();
    await expectNothingLeft(before, db.url, db.name);
  });
});
