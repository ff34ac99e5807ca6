import { expect } from '@jest/globals';
import { query } from './transport.js';
import { sleep } from './wait-for.js';

/** The handles a leaked pool, client, socket or timer keeps open in this process. */
export interface ActiveHandles {
  sockets: number;
  timers: number;
}

export function activeHandles(): ActiveHandles {
  const info = process.getActiveResourcesInfo();
  return {
    sockets: info.filter((name) => name === 'TCPSocketWrap').length,
    timers: info.filter((name) => name === 'Timeout').length,
  };
}

/** Polls `read` until `done` accepts its value or `timeoutMs` passes; returns the last value. */
async function settle<T>(
  read: () => T | Promise<T>,
  done: (value: T) => boolean,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await sleep(25);
  }
}

/**
 * Asserts that everything a test opened is gone: no session of the transport (application_name
 * `nestjs-pg-transport…`) left on `database`, and no more sockets or timers in this process than
 * `before` (taken when the test started, so jest's own handles are the baseline). Sockets close
 * asynchronously, hence the short wait before failing.
 */
export async function expectNothingLeft(
  before: ActiveHandles,
  adminUrl: string,
  database: string,
): Promise<void> {
  const sessions = await settle(
    () =>
      query<{ application_name: string }>(
        adminUrl,
        `SELECT application_name FROM pg_stat_activity
         WHERE datname = $1 AND application_name LIKE 'nestjs-pg-transport%'`,
        [database],
      ),
    (rows) => rows.length === 0,
    5_000,
  );
  expect(sessions).toEqual([]);
  const after = await settle(
    activeHandles,
    (now) => now.sockets <= before.sockets && now.timers <= before.timers,
    5_000,
  );
  expect(after.sockets).toBeLessThanOrEqual(before.sockets);
  expect(after.timers).toBeLessThanOrEqual(before.timers);
}
