import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { LoggerService } from '@nestjs/common';
import pg from 'pg';
import {
  ListenerState,
  PostgresListener,
  type ListenerReadyEvent,
  type ListenerStatus,
  type PostgresListenerOptions,
} from '../../lib/listener/index.js';
import { createTestDatabase, withDatabase, type TestDatabase } from '../helpers/database.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait-for.js';

interface LogEntry {
  level: 'log' | 'warn' | 'error';
  message: string;
  context: unknown;
}

function recordingLogger(): { logger: LoggerService; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const entry = (level: LogEntry['level']) => (message: string, context?: unknown) =>
    entries.push({ level, message, context });
  return { entries, logger: { log: entry('log'), warn: entry('warn'), error: entry('error') } };
}

function handles(): { sockets: number; timers: number } {
  const info = process.getActiveResourcesInfo();
  return {
    sockets: info.filter((name) => name === 'TCPSocketWrap').length,
    timers: info.filter((name) => name === 'Timeout').length,
  };
}

/** A listener with everything it emits recorded, plus a subscription to `channel`. */
function observed(options: PostgresListenerOptions, channel = 'events') {
  const { logger, entries: logs } = recordingLogger();
  const listener = new PostgresListener({ logger, ...options });
  const statuses: ListenerStatus[] = [];
  const ready: ListenerReadyEvent[] = [];
  const payloads: string[] = [];
  listener.state$.subscribe((status) => statuses.push(status));
  listener.ready$.subscribe((event) => ready.push(event));
  listener.notifications(channel).subscribe((payload) => payloads.push(payload));
  return { listener, statuses, ready, payloads, logs };
}

const fast = { initialDelayMs: 20, maxDelayMs: 200 };

describe('PostgresListener under faults', () => {
  let db: TestDatabase;
  let admin: pg.Client;
  const cleanups: (() => Promise<unknown>)[] = [];

  const notify = (channel: string, payload: string) =>
    admin.query('SELECT pg_notify($1, $2)', [channel, payload]);
  const targetPort = () => Number(new URL(db.url).port);

  beforeAll(async () => {
    db = await createTestDatabase('listener_faults');
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  afterAll(async () => {
    await admin.end();
    await db.drop();
  });

  it('reconnects after its backend is terminated, re-LISTENs and signals ready$', async () => {
    const { listener, statuses, ready, payloads } = observed({
      connectionString: db.url,
      reconnect: fast,
    });
    cleanups.push(() => listener.close());
    await listener.start();
    const killed = listener.backendPid;

    await admin.query('SELECT pg_terminate_backend($1)', [killed]);
    await waitFor(() => ready.length === 2, { message: 'ready$ after the reconnect' });

    expect(ready).toEqual([{ reconnect: false }, { reconnect: true }]);
    expect(statuses.map(({ state }) => state)).toEqual([
      ListenerState.Connecting,
      ListenerState.Connected,
      ListenerState.Reconnecting,
      ListenerState.Connected,
    ]);
    expect(statuses[2]).toMatchObject({
      attempt: 1,
      error: { code: '57P01', fatal: false },
    });
    expect(listener.backendPid).not.toBe(killed);
    await notify('events', 'after the kill');
    await waitFor(() => payloads.includes('after the kill'));
  });

  it('detects a blackholed connection within heartbeat interval + timeout, then recovers', async () => {
    const interval = 300;
    const timeout = 500;
    const proxy = await TcpProxy.start({ target: { port: targetPort() } });
    const { listener, statuses, ready, payloads } = observed({
      connectionString: proxy.urlFor(db.url),
      heartbeatIntervalMs: interval,
      heartbeatTimeoutMs: timeout,
      reconnect: fast,
    });
    cleanups.push(
      () => proxy.close(),
      () => listener.close(),
    );
    await listener.start();

    const blackholedAt = Date.now();
    proxy.blackhole();
    const lost = await waitFor(
      () => statuses.find((status) => status.state === ListenerState.Reconnecting),
      { timeoutMs: 5_000, message: 'the blackhole to be detected' },
    );
    const detectedAfter = lost.since.getTime() - blackholedAt;
    // The bound, plus a margin for a loaded CI machine; nothing closed the socket, so only the
    // heartbeat can have noticed.
    expect(detectedAfter).toBeLessThanOrEqual(interval + timeout + 400);
    expect(lost.error).toMatchObject({ code: 'ETIMEDOUT', fatal: false });

    proxy.heal();
    await waitFor(() => ready.length === 2, { message: 'ready$ after the heal' });
    expect(listener.status.state).toBe(ListenerState.Connected);
    await notify('events', 'after the heal');
    await waitFor(() => payloads.includes('after the heal'));
  });

  it('reports notificationsVerified: false and logs an error when notifications cannot arrive', async () => {
    const proxy = await TcpProxy.start({ target: { port: targetPort() }, dropNotifications: true });
    const { listener, logs } = observed({
      connectionString: proxy.urlFor(db.url),
      heartbeatTimeoutMs: 300,
    });
    cleanups.push(
      () => proxy.close(),
      () => listener.close(),
    );
    await listener.start();

    expect(listener.status).toMatchObject({
      state: ListenerState.Connected,
      notificationsVerified: false,
    });
    expect(proxy.droppedNotifications).toBeGreaterThan(0);
    expect(logs).toContainEqual({
      level: 'error',
      message: expect.stringContaining('self-test failed'),
      context: 'PostgresListener',
    });
  });

  it('reports a refused login as fatal, without the password, and close() mid-backoff leaves nothing', async () => {
    // A role that may not log in, with a wrong password: refused by a server that checks
    // passwords (28P01) and by one that trusts its clients (28000) alike.
    const role = `${db.name}_nologin`;
    await admin.query(`CREATE ROLE "${role}" NOLOGIN PASSWORD 'not-hunter2'`);
    cleanups.push(() => admin.query(`DROP ROLE "${role}"`));
    const before = handles();
    const wrong = new URL(db.url);
    wrong.username = role;
    wrong.password = 'hunter2-not-the-password';
    const { listener, statuses, logs } = observed({
      connectionString: wrong.toString(),
      reconnect: { initialDelayMs: 50, maxDelayMs: 5_000 },
    });
    const started = listener.start();

    const failed = await waitFor(() =>
      statuses.find((status) => status.state === ListenerState.Reconnecting),
    );
    expect(failed.error).toEqual({
      code: expect.stringMatching(/^28(P01|000)$/),
      fatal: true,
      message: expect.any(String),
    });
    expect(failed.nextDelayMs).toBeGreaterThanOrEqual(2_500);
    expect(JSON.stringify(statuses)).not.toContain('hunter2');
    expect(JSON.stringify(logs)).not.toContain('hunter2');
    expect(logs).toContainEqual({
      level: 'error',
      message: expect.stringContaining(`[${failed.error!.code}]`),
      context: 'PostgresListener',
    });

    await listener.close();
    await started;
    expect(listener.status.state).toBe(ListenerState.Closed);
    expect(handles()).toEqual(before);
  });

  it('keeps retrying a missing database at the slow pace, and heals once it exists', async () => {
    const name = `${db.name}_later`;
    const { listener, statuses } = observed({
      connectionString: withDatabase(db.url, name),
      reconnect: { initialDelayMs: 50, maxDelayMs: 300 },
    });
    cleanups.push(
      () => listener.close(),
      () => admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
    );
    void listener.start();

    const failed = await waitFor(() =>
      statuses.find((status) => status.state === ListenerState.Reconnecting),
    );
    expect(failed.error).toMatchObject({ code: '3D000', fatal: true });
    await admin.query(`CREATE DATABASE "${name}"`);
    await waitFor(() => listener.status.state === ListenerState.Connected, {
      message: 'the listener to connect once the database exists',
    });
  });

  it('treats too_many_connections (53300) as transient', async () => {
    const role = `${db.name}_limited`;
    await admin.query(`CREATE ROLE "${role}" LOGIN PASSWORD 'limited' CONNECTION LIMIT 0`);
    const url = new URL(db.url);
    url.username = role;
    url.password = 'limited';
    const { listener, statuses } = observed({ connectionString: url.toString(), reconnect: fast });
    cleanups.push(
      () => admin.query(`DROP ROLE "${role}"`),
      () => listener.close(),
    );
    void listener.start();

    const failures = await waitFor(() => {
      const seen = statuses.filter((status) => status.state === ListenerState.Reconnecting);
      return seen.length >= 3 ? seen : undefined;
    });
    expect(failures.map((status) => status.error)).toEqual(
      Array(failures.length).fill({ code: '53300', fatal: false, message: expect.any(String) }),
    );
    expect(failures.map((status) => status.attempt)).toEqual(failures.map((_, index) => index + 1));
    // A run of failures keeps the moment the run began.
    expect(new Set(failures.map((status) => status.since.getTime())).size).toBe(1);
  });

  it('close() while connecting through a blackhole returns promptly and leaves nothing', async () => {
    const proxy = await TcpProxy.start({ target: { port: targetPort() } });
    cleanups.push(() => proxy.close());
    const before = handles();
    proxy.blackhole();
    const listener = new PostgresListener({
      connectionString: proxy.urlFor(db.url),
      logger: recordingLogger().logger,
    });
    const started = listener.start();
    await waitFor(() => proxy.connectionCount === 1);

    const closing = Date.now();
    await listener.close();
    await started;
    expect(Date.now() - closing).toBeLessThan(1_000);
    // The listener's socket is gone; the proxy still holds its own pair, paused.
    expect(handles()).toEqual({ ...before, sockets: before.sockets + 2 });
    proxy.heal();
    await waitFor(() => proxy.connectionCount === 0);
    expect(handles()).toEqual(before);
  });
});
