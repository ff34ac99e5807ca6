import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, type INestApplication } from '@nestjs/common';
import { Ctx, EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { firstValueFrom, lastValueFrom, Subscription } from 'rxjs';
import {
  ClientPostgres,
  ListenerState,
  POSTGRES_TRANSPORT,
  PostgresContext,
  PostgresListener,
  PostgresStatus,
  PostgresTransport,
  PostgresTransportModule,
  ServerPostgres,
} from '../../lib/index.js';
import { Closer } from '../helpers/closer.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { activeHandles, expectNothingLeft } from '../helpers/leaks.js';
import { query, startClient } from '../helpers/transport.js';
import { waitFor } from '../helpers/wait-for.js';

const HANDLERS = 100;
const SUBSCRIBERS = 1_000;

/** One controller with 100 event handlers, `p.0` … `p.99`, decorated in a loop. */
@Controller()
class HundredHandlersController {}
for (let i = 0; i < HANDLERS; i++) {
  const key = `handle${i}`;
  const handler = async function (data: { key: string }, ctx: PostgresContext) {
    await ctx.query('INSERT INTO handled (pattern, group_name, key) VALUES ($1, $2, $3)', [
      ctx.getPattern(),
      ctx.getGroup(),
      data.key,
    ]);
  };
  Object.defineProperty(HundredHandlersController.prototype, key, {
    value: handler,
    writable: true,
    configurable: true,
  });
  Payload()(HundredHandlersController.prototype, key, 0);
  Ctx()(HundredHandlersController.prototype, key, 1);
  const descriptor = Object.getOwnPropertyDescriptor(HundredHandlersController.prototype, key)!;
  EventPattern(`p.${i}`, POSTGRES_TRANSPORT)(HundredHandlersController.prototype, key, descriptor);
}

@Controller()
class EchoController {
  @MessagePattern('one.echo', POSTGRES_TRANSPORT)
  echo(data: { text: string }) {
    return { echoed: data.text };
  }
}

const LISTENER_APPLICATION_NAME = 'nestjs-pg-transport:listener';

describe('one LISTEN connection per process', () => {
  let db: TestDatabase;
  const closer = new Closer();

  beforeAll(async () => {
    db = await createTestDatabase('one_connection');
    await query(
      db.url,
      'CREATE TABLE handled (pattern text NOT NULL, group_name text NOT NULL, key text NOT NULL)',
    );
  });

  afterEach(async () => {
    await closer.closeAll();
  });

  afterAll(async () => {
    await db.drop();
  });

  /** Sessions of this database that are, or ever acted as, a LISTEN connection. */
  const listenSessions = () =>
    query<{ pid: number; application_name: string }>(
      db.url,
      `SELECT pid, application_name FROM pg_stat_activity
       WHERE datname = $1 AND (application_name = $2 OR query ~* '^\\s*(UN)?LISTEN\\s')`,
      [db.name, LISTENER_APPLICATION_NAME],
    );

  it('serves 100 handlers, 4 servers, 4 clients and 1,000 subscribers on one session', async () => {
    const before = activeHandles();
    const moduleRef = await Test.createTestingModule({
      imports: [PostgresTransportModule.forRoot({ connectionString: db.url })],
      controllers: [HundredHandlersController, EchoController],
    }).compile();
    const app: INestApplication = moduleRef.createNestApplication({ logger: false });
    closer.add(app, (a) => a.close());
    const transport = app.get(PostgresTransport);
    const servers = [
      ...['direct-a', 'direct-b', 'direct-c'].map(
        (group) => new ServerPostgres({ connectionString: db.url, group }),
      ),
      transport.createServer({ group: 'module' }),
    ];
    for (const strategy of servers) app.connectMicroservice({ strategy });
    await app.startAllMicroservices();
    await app.init();

    const clients: ClientPostgres[] = [];
    for (let i = 0; i < 3; i++)
      clients.push(closer.add(await startClient(db.url), (c) => c.close()));
    // Replies reach this one only through a NOTIFY on the shared session: its poll is a minute.
    const moduleClient = transport.createClient({ replyPollIntervalMs: 60_000 });
    closer.add(moduleClient, (c) => c.close());
    await moduleClient.connect();
    clients.push(moduleClient);

    const listener = app.get(PostgresListener);
    await waitFor(() => listener.status.state === ListenerState.Connected);
    for (const server of servers) expect(server.unwrap().listener).toBe(listener);

    const received: number[] = new Array(SUBSCRIBERS).fill(0);
    const subscriptions = closer.add(new Subscription(), (s) => s.unsubscribe());
    for (let i = 0; i < SUBSCRIBERS; i++) {
      subscriptions.add(listener.notifications('one.fanout').subscribe(() => (received[i] += 1)));
    }

    // Exactly one LISTEN session for everything above, and it is the shared listener's.
    const sessions = await waitFor(
      async () => {
        const rows = await listenSessions();
        return rows.length > 0 ? rows : undefined;
      },
      { message: 'the LISTEN session in pg_stat_activity' },
    );
    expect(sessions).toEqual([
      { pid: listener.backendPid, application_name: LISTENER_APPLICATION_NAME },
    ]);

    // The 1,000 subscribers share the session: one NOTIFY reaches each of them once. (A new
    // ready$ subscriber is told once the LISTENs sent before it are answered.)
    await firstValueFrom(listener.ready$);
    await query(db.url, "SELECT pg_notify('one.fanout', 'hello')");
    await waitFor(() => received.every((n) => n > 0), { message: 'every subscriber notified' });
    expect(received).toEqual(new Array(SUBSCRIBERS).fill(1));

    // Events to several of the 100 patterns, through every client, reach every group.
    const patterns = ['p.0', 'p.17', 'p.42', 'p.99'];
    await Promise.all(
      patterns.map((pattern, i) =>
        lastValueFrom(clients[i].emit(pattern, { key: `${pattern}-from-${i}` })),
      ),
    );
    const groups = ['direct-a', 'direct-b', 'direct-c', 'module'];
    const expected = patterns.flatMap((pattern, i) =>
      groups.map((group_name) => ({ pattern, group_name, key: `${pattern}-from-${i}` })),
    );
    const handled = await waitFor(
      async () => {
        const rows = await query(db.url, 'SELECT pattern, group_name, key FROM handled');
        return rows.length >= expected.length ? rows : undefined;
      },
      { message: `${expected.length} handled events` },
    );
    const byPatternAndGroup = (a: { pattern: string; group_name: string }, b: typeof a) =>
      a.pattern.localeCompare(b.pattern) || a.group_name.localeCompare(b.group_name);
    expect(handled.sort(byPatternAndGroup)).toEqual(expected.sort(byPatternAndGroup));

    // The module's client gets its reply, woken through the same session.
    const reply = await lastValueFrom(moduleClient.send('one.echo', { text: 'ping' }));
    expect(reply).toEqual({ echoed: 'ping' });
    expect(await listenSessions()).toEqual(sessions);

    await closer.closeAll();
    expect(listener.status.state).toBe(ListenerState.Closed);
    await expectNothingLeft(before, db.url, db.name);
  });

  // Every process with a client would otherwise receive every wake-up sent on the channel.
  it('opens no LISTEN session for a client that only emits; its first send opens one', async () => {
    const before = activeHandles();
    const client = closer.add(await startClient(db.url), (c) => c.close());
    expect(await firstValueFrom(client.status)).toBe(PostgresStatus.CONNECTED);
    // A group that subscribes to the pattern, so that the emits write rows and send wake-ups.
    await query(
      db.url,
      `INSERT INTO nestjs_transport.subscriptions (pattern, kind, group_name)
       VALUES ('emit.only', 'event', 'emit-only-group') ON CONFLICT DO NOTHING`,
    );
    for (let i = 0; i < 5; i++) {
      const result = await lastValueFrom(client.emit('emit.only', { key: `emit-only-${i}` }));
      expect(result).toEqual({ recipients: ['emit-only-group'] });
    }
    expect(await listenSessions()).toEqual([]);

    // No group serves this request, so it fails at once; the client listens from now on.
    await expect(lastValueFrom(client.send('nobody.serves', {}))).rejects.toBeDefined();
    const [session] = await waitFor(
      async () => {
        const sessions = await listenSessions();
        return sessions.length === 1 ? sessions : undefined;
      },
      { message: 'the LISTEN session of the first send' },
    );
    expect(session.application_name).toBe(LISTENER_APPLICATION_NAME);
    await waitFor(async () => (await firstValueFrom(client.status)) === PostgresStatus.CONNECTED, {
      message: 'the client to report its LISTEN connection connected',
    });

    await closer.closeAll();
    await expectNothingLeft(before, db.url, db.name);
  });
});
