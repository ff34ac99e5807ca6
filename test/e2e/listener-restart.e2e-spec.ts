import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { LoggerService } from '@nestjs/common';
import pg from 'pg';
import { startThrowawayPostgres, type ThrowawayPostgres } from '#throwaway-postgres';
import {
  ListenerState,
  PostgresListener,
  type ListenerReadyEvent,
  type ListenerStatus,
} from '../../lib/listener/index.js';
import { waitFor } from '../helpers/wait-for.js';

const silent: LoggerService = {
  log: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

// A server of its own: stopping the shared test server would break every other test file.
describe('PostgresListener across a server restart', () => {
  let server: ThrowawayPostgres;

  beforeAll(async () => {
    server = await startThrowawayPostgres({ settings: { fsync: 'off' } });
  });

  afterAll(async () => {
    await server.destroy();
  });

  it('reconnects when the server comes back on the same port and notifications flow again', async () => {
    const listener = new PostgresListener({
      connectionString: server.url,
      heartbeatIntervalMs: 500,
      heartbeatTimeoutMs: 1_000,
      reconnect: { initialDelayMs: 50, maxDelayMs: 400 },
      logger: silent,
    });
    const statuses: ListenerStatus[] = [];
    const ready: ListenerReadyEvent[] = [];
    const payloads: string[] = [];
    listener.state$.subscribe((status) => statuses.push(status));
    listener.ready$.subscribe((event) => ready.push(event));
    listener.notifications('restart').subscribe((payload) => payloads.push(payload));
    await listener.start();

    await server.stop();
    await waitFor(() => listener.status.state === ListenerState.Reconnecting);
    // Keep it down long enough for a few refused attempts.
    await waitFor(() => (listener.status.attempt ?? 0) >= 3, {
      message: 'attempts against the stopped server',
    });
    await server.start();
    await waitFor(() => ready.length === 2, { timeoutMs: 20_000, message: 'ready$ after restart' });

    expect(ready).toEqual([{ reconnect: false }, { reconnect: true }]);
    expect(listener.status).toMatchObject({ state: ListenerState.Connected });
    const codes = statuses.flatMap((status) => (status.error?.code ? [status.error.code] : []));
    expect(codes[0]).toBe('57P01'); // the server terminating the session on shutdown
    expect(codes).toContain('ECONNREFUSED');
    expect(statuses.some((status) => status.error?.fatal)).toBe(false);

    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    await client.query(`SELECT pg_notify('restart', 'back')`);
    await client.end();
    await waitFor(() => payloads.includes('back'));
    await listener.close();
  });
});
