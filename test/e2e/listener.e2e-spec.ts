import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { LoggerService } from '@nestjs/common';
import pg from 'pg';
import { firstValueFrom, take, toArray } from 'rxjs';
import {
  acquireListener,
  InvalidChannelNameError,
  InvalidListenerOptionError,
  ListenerState,
  PostgresListener,
  type ListenerReadyEvent,
} from '../../lib/listener/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { waitFor } from '../helpers/wait-for.js';

const silent: LoggerService = {
  log: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** Counts of the handles that would keep the process alive after a leak. */
function handles(): { sockets: number; timers: number } {
  const info = process.getActiveResourcesInfo();
  return {
    sockets: info.filter((name) => name === 'TCPSocketWrap').length,
    timers: info.filter((name) => name === 'Timeout').length,
  };
}

describe('PostgresListener', () => {
  let db: TestDatabase;
  let admin: pg.Client;

  const notify = (channel: string, payload: string) =>
    admin.query('SELECT pg_notify($1, $2)', [channel, payload]);
  const lastQuery = async (listener: PostgresListener) => {
    const { rows } = await admin.query<{ query: string }>(
      'SELECT query FROM pg_stat_activity WHERE pid = $1',
      [listener.backendPid],
    );
    return rows[0]?.query ?? '';
  };
  const sessions = async (applicationName: string) => {
    const { rows } = await admin.query<{ count: number }>(
      'SELECT count(*)::int AS count FROM pg_stat_activity WHERE application_name = $1',
      [applicationName],
    );
    return rows[0]!.count;
  };

  beforeAll(async () => {
    db = await createTestDatabase('listener');
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
  });

  afterAll(async () => {
    await admin.end();
    await db.drop();
  });

  it('connects, verifies notifications and delivers them', async () => {
    const listener = new PostgresListener({ connectionString: db.url, logger: silent });
    const ready: ListenerReadyEvent[] = [];
    listener.ready$.subscribe((event) => ready.push(event));
    const received = firstValueFrom(listener.notifications('orders').pipe(take(2), toArray()));
    await listener.start();

    expect(listener.status).toMatchObject({
      state: ListenerState.Connected,
      notificationsVerified: true,
    });
    expect(listener.backendPid).toEqual(expect.any(Number));
    expect(ready).toEqual([{ reconnect: false }]);
    await notify('orders', 'one');
    await notify('orders', 'two');
    await expect(received).resolves.toEqual(['one', 'two']);
    await listener.close();
    expect(listener.status.state).toBe(ListenerState.Closed);
  });

  it('replays ready$ to a subscriber that arrives while connected', async () => {
    const listener = new PostgresListener({ connectionString: db.url, logger: silent });
    await listener.start();
    await expect(firstValueFrom(listener.ready$)).resolves.toEqual({ reconnect: false });
    await listener.close();
  });

  it('fans 1,000 subscribers of one channel, and others, out of one LISTEN session', async () => {
    const applicationName = `fanout_${process.pid}`;
    const listener = new PostgresListener({
      connectionString: db.url,
      applicationName,
      logger: silent,
    });
    const subscribers = new Map([
      ['fan_main', 1_000],
      ['fan_a', 100],
      ['fan_b', 100],
      ['fan_c', 100],
    ]);
    const received = new Map([...subscribers.keys()].map((channel) => [channel, 0]));
    const subscriptions = [...subscribers].flatMap(([channel, howMany]) =>
      Array.from({ length: howMany }, () =>
        listener
          .notifications(channel)
          .subscribe(() => received.set(channel, received.get(channel)! + 1)),
      ),
    );
    await listener.start();

    const { rows } = await admin.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE application_name = $1',
      [applicationName],
    );
    expect(rows.map((row) => row.pid)).toEqual([listener.backendPid]);
    for (const channel of subscribers.keys()) await notify(channel, 'hello');
    await waitFor(
      () => [...subscribers].every(([channel, howMany]) => received.get(channel) === howMany),
      { message: 'every subscriber to receive its notification' },
    );

    for (const subscription of subscriptions) subscription.unsubscribe();
    await listener.close();
    await waitFor(async () => (await sessions(applicationName)) === 0);
  });

  it('LISTENs on the first subscription and UNLISTENs after the last one', async () => {
    // A long heartbeat keeps the session's last statement ours, so pg_stat_activity shows it.
    const listener = new PostgresListener({
      connectionString: db.url,
      heartbeatIntervalMs: 60_000,
      logger: silent,
    });
    await listener.start();
    const first = listener.notifications('refcount').subscribe();
    await waitFor(async () => (await lastQuery(listener)) === 'LISTEN "refcount"');
    const second = listener.notifications('refcount').subscribe();
    first.unsubscribe();
    second.unsubscribe();
    await waitFor(async () => (await lastQuery(listener)) === 'UNLISTEN "refcount"', {
      message: 'UNLISTEN after the last unsubscribe',
    });
    await listener.close();
  });

  it('shares one connection between two acquireListener calls for the same target', async () => {
    const applicationName = `shared_${process.pid}`;
    const first = acquireListener({ connectionString: db.url, applicationName, logger: silent });
    const second = acquireListener({ connectionString: db.url, applicationName, logger: silent });
    expect(second.listener).toBe(first.listener);
    await first.listener.start();
    expect(await sessions(applicationName)).toBe(1);

    await first.release();
    expect(first.listener.status.state).toBe(ListenerState.Connected);
    await second.release();
    expect(first.listener.status.state).toBe(ListenerState.Closed);

    const third = acquireListener({ connectionString: db.url, applicationName, logger: silent });
    expect(third.listener).not.toBe(first.listener);
    await third.release();
  });

  it('LISTENs on hostile channel names and refuses names PostgreSQL would truncate', async () => {
    const listener = new PostgresListener({ connectionString: db.url, logger: silent });
    const names = [
      `it's "quoted"`,
      'with space',
      'MixedCase',
      'ünïcødé 🚀 通知',
      '"; DROP TABLE x; --',
      `'); SELECT pg_sleep(10); --`,
      'x'.repeat(63),
      'é'.repeat(31),
    ];
    // Half are LISTENed by the connect batch, half one by one on the live connection.
    const early = names.slice(0, 4).map((name) => firstValueFrom(listener.notifications(name)));
    await listener.start();
    const late = names.slice(4).map((name) => firstValueFrom(listener.notifications(name)));
    await waitFor(async () => (await lastQuery(listener)).startsWith('LISTEN'));
    for (const name of names) await notify(name, `payload for ${name}`);
    await expect(Promise.all([...early, ...late])).resolves.toEqual(
      names.map((name) => `payload for ${name}`),
    );

    expect(() => listener.notifications('x'.repeat(64))).toThrow(InvalidChannelNameError);
    expect(() => listener.notifications('é'.repeat(32))).toThrow(/64 bytes/);
    expect(() => listener.notifications('')).toThrow(InvalidChannelNameError);
    await listener.close();
  });

  it('rejects invalid options with an error naming the option', () => {
    expect(() => new PostgresListener({})).toThrow(InvalidListenerOptionError);
    expect(
      () => new PostgresListener({ connectionString: db.url, connection: { host: 'x' } }),
    ).toThrow(/`connectionString`/);
    expect(
      () =>
        new PostgresListener({
          connectionString: db.url,
          reconnect: { initialDelayMs: 500, maxDelayMs: 100 },
        }),
    ).toThrow(/`reconnect.maxDelayMs`/);
    expect(
      () => new PostgresListener({ connectionString: db.url, heartbeatIntervalMs: 0 }),
    ).toThrow(/`heartbeatIntervalMs`/);
  });

  it('completes its streams on close and leaves no socket or timer behind', async () => {
    const before = handles();
    const listener = new PostgresListener({
      connectionString: db.url,
      heartbeatIntervalMs: 50,
      logger: silent,
    });
    const payloads = listener.notifications('leaks').pipe(toArray());
    const collected = firstValueFrom(payloads);
    const states = firstValueFrom(listener.state$.pipe(toArray()));
    await listener.start();
    await notify('leaks', 'x');
    // Wait for a heartbeat, so the check covers a connection with its timer armed.
    await waitFor(async () => (await lastQuery(listener)).includes('pg_listening_channels'));
    await listener.close();
    await listener.close();

    expect(handles()).toEqual(before);
    await expect(collected).resolves.toEqual(['x']);
    expect((await states).map((status) => status.state)).toEqual([
      ListenerState.Connecting,
      ListenerState.Connected,
      ListenerState.Closed,
    ]);
    await expect(firstValueFrom(listener.state$)).resolves.toMatchObject({
      state: ListenerState.Closed,
    });
    await expect(listener.start()).rejects.toThrow(/closed/);
  });
});
