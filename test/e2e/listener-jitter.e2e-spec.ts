import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { LoggerService } from '@nestjs/common';
import { ListenerState, PostgresListener } from '../../lib/listener/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait-for.js';

const silent: LoggerService = {
  log: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** Mulberry32: a seeded source, so every run draws the same delays whatever the timing. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
const deviation = (values: number[]) => {
  const m = mean(values);
  return Math.sqrt(mean(values.map((value) => (value - m) ** 2)));
};

describe('PostgresListener reconnect jitter', () => {
  const count = 20;
  const initialDelayMs = 50;
  const maxDelayMs = 800;
  const attempts = 7; // ceilings 100, 200, 400, 800 (capped), 800, 800, 800
  let db: TestDatabase;
  let proxy: TcpProxy;

  beforeAll(async () => {
    db = await createTestDatabase('listener_jitter');
    proxy = await TcpProxy.start({ target: { port: Number(new URL(db.url).port) } });
  });

  afterAll(async () => {
    await proxy.close();
    await db.drop();
  });

  it('spreads the reconnects of listeners that lost their connection at the same moment', async () => {
    const listeners = Array.from(
      { length: count },
      (_, index) =>
        new PostgresListener({
          connectionString: proxy.urlFor(db.url),
          reconnect: { initialDelayMs, maxDelayMs },
          random: seeded(index + 1),
          logger: silent,
        }),
    );
    // delays[listener][attempt - 1] = nextDelayMs reported for that attempt
    const delays: number[][] = listeners.map(() => []);
    listeners.forEach((listener, index) =>
      listener.state$.subscribe(({ state, attempt, nextDelayMs }) => {
        if (state === ListenerState.Reconnecting) delays[index]![attempt! - 1] = nextDelayMs!;
      }),
    );
    await Promise.all(listeners.map((listener) => listener.start()));

    proxy.refuseNewConnections();
    proxy.cutAll();
    await waitFor(() => delays.every((perListener) => perListener.length >= attempts), {
      message: `every listener to reach attempt ${attempts}`,
    });
    proxy.refuseNewConnections(false);
    await waitFor(
      () => listeners.every((listener) => listener.status.state === ListenerState.Connected),
      { message: 'every listener to reconnect' },
    );
    await Promise.all(listeners.map((listener) => listener.close()));

    // Per listener: each delay lies in its attempt's window, which grows and is capped.
    for (const perListener of delays) {
      perListener.slice(0, attempts).forEach((delay, index) => {
        const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** (index + 1));
        expect(delay).toBeGreaterThanOrEqual(initialDelayMs);
        expect(delay).toBeLessThanOrEqual(ceiling);
      });
      expect(Math.max(...perListener.slice(3, attempts))).toBeGreaterThan(perListener[0]!);
    }

    // Across listeners: at each attempt the delays are all different and widely spread.
    const means: number[] = [];
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const atAttempt = delays.map((perListener) => perListener[attempt - 1]!);
      const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** attempt);
      expect(new Set(atAttempt).size).toBe(count);
      expect(deviation(atAttempt)).toBeGreaterThan(0.15 * mean(atAttempt));
      expect(Math.max(...atAttempt) - Math.min(...atAttempt)).toBeGreaterThan(
        0.5 * (ceiling - initialDelayMs),
      );
      means.push(mean(atAttempt));
    }
    // The typical delay grows with the attempt number until the cap.
    expect(means[1]).toBeGreaterThan(means[0]!);
    expect(means[2]).toBeGreaterThan(means[1]!);
    expect(means[3]).toBeGreaterThan(means[2]!);
  });
});
