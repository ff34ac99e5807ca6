import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  Controller,
  Get,
  Module,
  type INestApplication,
  type INestMicroservice,
  type Type,
} from '@nestjs/common';
import { EventPattern } from '@nestjs/microservices';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import {
  POSTGRES_HEALTH_OPTIONS,
  PostgresHealthIndicator,
  type PostgresHealthOptions,
} from '../../lib/health/index.js';
import { POSTGRES_TRANSPORT, PostgresTransport, PostgresTransportModule } from '../../lib/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { query, startServer } from '../helpers/transport.js';
import { waitFor } from '../helpers/wait-for.js';

const IGNORE_REPORTS: PostgresHealthOptions = { groups: { reports: { maxPendingAgeMs: null } } };
const NO_DEAD_LETTERS: PostgresHealthOptions = { maxDeadLetters: 0 };

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly postgres: PostgresHealthIndicator,
  ) {}

  @Get('ready')
  @HealthCheck()
  ready() {
    return this.health.check([() => this.postgres.isHealthy()]);
  }

  @Get('live')
  @HealthCheck()
  live() {
    return this.health.check([() => this.postgres.isAlive()]);
  }

  @Get('ready-ignoring-reports')
  readyIgnoringReports() {
    return this.health.check([() => this.postgres.isHealthy('postgres', IGNORE_REPORTS)]);
  }

  @Get('dead-letters')
  deadLetters() {
    return this.health.check([() => this.postgres.isHealthy('queue', NO_DEAD_LETTERS)]);
  }
}

@Controller()
class BillingController {
  @EventPattern<string>('invoice.paid', POSTGRES_TRANSPORT)
  paid() {}
}

function appModule(url: string, listenUrl: string): Type {
  @Module({
    imports: [
      PostgresTransportModule.forRoot({
        // No idle timeout, so the pool figures in the JSON stay put.
        poolConfig: { connectionString: url, idleTimeoutMillis: 0 },
        listenConnectionString: listenUrl,
        listener: {
          heartbeatIntervalMs: 100,
          heartbeatTimeoutMs: 300,
          connectTimeoutMs: 300,
          reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
        },
      }),
      TerminusModule.forRoot({ logger: false }),
    ],
    controllers: [HealthController],
    providers: [
      PostgresHealthIndicator,
      {
        provide: POSTGRES_HEALTH_OPTIONS,
        useValue: { maxListenerDownMs: 1_000, maxPendingAgeMs: 60_000 },
      },
    ],
  })
  class AppModule {}
  return AppModule;
}

/** Replaces the one volatile field, after checking it is a recent ISO timestamp. */
function normalised(body: any, started: number): any {
  return JSON.parse(JSON.stringify(body), (key, value) => {
    if (key !== 'since') return value;
    expect(new Date(value).toISOString()).toBe(value);
    expect(Date.parse(value)).toBeGreaterThanOrEqual(started - 1_000);
    return '<since>';
  });
}

describe('PostgresHealthIndicator over HTTP', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let app: INestApplication;
  let consumer: INestMicroservice;
  const started = Date.now();
  const http = () => request(app.getHttpServer());
  const listenerState = () => app.get(PostgresTransport).listener.status.state;

  beforeAll(async () => {
    db = await createTestDatabase();
    proxy = await TcpProxy.start({ target: { port: Number(new URL(db.url).port) } });
    const moduleRef = await Test.createTestingModule({
      imports: [appModule(db.url, proxy.urlFor(db.url))],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    // The consumer runs in its own app on its own pool: the health app's pool serves only probes.
    ({ app: consumer } = await startServer(db.url, [BillingController], {
      group: 'billing',
      sweepIntervalMs: 60_000,
    }));
    await waitFor(() => listenerState() === 'connected', { message: 'listener connected' });
  });

  afterAll(async () => {
    await consumer?.close();
    await app?.close();
    await proxy?.close();
    await db?.drop();
  });

  const healthy = {
    status: 'up',
    listener: { state: 'connected', since: '<since>' },
    pool: { reachable: true, total: 1, idle: 1, waiting: 0 },
    groups: { billing: { pending: 0, oldestPendingAgeMs: null, deadLetters: 0 } },
  };

  it('readiness returns the exact Terminus JSON when healthy', async () => {
    const res = await http().get('/health/ready').expect(200);
    expect(normalised(res.body, started)).toEqual({
      status: 'ok',
      info: { postgres: healthy },
      error: {},
      details: { postgres: healthy },
    });
    expect(res.headers['cache-control']).toBe('no-cache, no-store, must-revalidate');
  });

  it('liveness answers from memory with the listener state', async () => {
    const live = { status: 'up', listener: { state: 'connected', since: '<since>' } };
    const res = await http().get('/health/live').expect(200);
    expect(normalised(res.body, started)).toEqual({
      status: 'ok',
      info: { postgres: live },
      error: {},
      details: { postgres: live },
    });
  });

  it('goes down once the listener is cut past maxListenerDownMs, and up after recovery', async () => {
    proxy.blackhole();
    await waitFor(() => listenerState() === 'reconnecting', { message: 'listener lost' });
    // Within the allowance: still ready.
    const early = await http().get('/health/ready').expect(200);
    expect(early.body.details.postgres.listener.state).toBe('reconnecting');

    const down = await waitFor(
      async () => {
        const res = await http().get('/health/ready');
        return res.status === 503 ? res : undefined;
      },
      { message: 'readiness down', timeoutMs: 5_000 },
    );
    const postgres = down.body.error.postgres;
    expect(down.body.status).toBe('error');
    expect(postgres).toMatchObject({
      status: 'down',
      reason: 'listener-down',
      listener: { state: 'reconnecting' },
      pool: { reachable: true },
      groups: { billing: { pending: 0, oldestPendingAgeMs: null, deadLetters: 0 } },
    });
    expect(postgres.message).toMatch(
      /^the LISTEN connection has been reconnecting for \d+ ms \(limit 1000 ms\)/,
    );
    // Liveness never depends on the database or the listener's connection.
    await http().get('/health/live').expect(200);

    proxy.heal();
    await waitFor(() => listenerState() === 'connected', { message: 'listener back' });
    const back = await http().get('/health/ready').expect(200);
    expect(back.body.details.postgres.listener.state).toBe('connected');
  });

  it('goes down when a group has waited past maxPendingAgeMs; per-call options override', async () => {
    await query(
      db.url,
      `INSERT INTO nestjs_transport.subscriptions (pattern, kind, group_name)
       VALUES ('report.requested', 'event', 'reports');
       INSERT INTO nestjs_transport.messages
         (recipient, pattern, kind, idempotency_key, payload, created_at, run_at)
       VALUES ('reports', 'report.requested', 'event', 'k1', '{}',
               now() - interval '10 minutes', now() - interval '10 minutes'),
              ('reports', 'report.requested', 'event', 'k2', '{}', now(), now() + interval '1 hour'),
              ('reply:00000000-0000-0000-0000-000000000000', 'x', 'reply', 'k3', '{}',
               now() - interval '1 day', now() - interval '1 day')`,
    );
    const res = await http().get('/health/ready').expect(503);
    const postgres = res.body.error.postgres;
    expect(postgres.reason).toBe('backlog');
    expect(postgres.message).toMatch(
      /^group "reports": the oldest pending message has waited \d+ ms \(limit 60000 ms\)$/,
    );
    // Reply inboxes are not groups; billing is unaffected.
    expect(Object.keys(postgres.groups)).toEqual(['billing', 'reports']);
    expect(postgres.groups.reports.pending).toBe(2);
    expect(postgres.groups.reports.deadLetters).toBe(0);
    const age = postgres.groups.reports.oldestPendingAgeMs;
    expect(age).toBeGreaterThanOrEqual(600_000);
    expect(age).toBeLessThan(610_000);

    await http().get('/health/ready-ignoring-reports').expect(200);
    await query(db.url, `DELETE FROM nestjs_transport.messages WHERE idempotency_key = 'k1'`);
    const recovered = await http().get('/health/ready').expect(200);
    // A row scheduled in the future is pending but not overdue.
    expect(recovered.body.details.postgres.groups.reports).toEqual({
      pending: 1,
      oldestPendingAgeMs: 0,
      deadLetters: 0,
    });
  });

  it('counts dead letters against maxDeadLetters when asked to', async () => {
    await http().get('/health/dead-letters').expect(200);
    await query(
      db.url,
      `INSERT INTO nestjs_transport.messages
         (recipient, pattern, kind, idempotency_key, payload, dead_at, last_error)
       VALUES ('billing', 'invoice.paid', 'event', 'dead-1', '{}', now(), 'Error: boom')`,
    );
    const res = await http().get('/health/dead-letters').expect(503);
    expect(res.body.error.queue).toMatchObject({
      status: 'down',
      reason: 'dead-letters',
      message: 'group "billing" holds 1 dead letters (limit 0)',
      groups: { billing: { pending: 0, oldestPendingAgeMs: null, deadLetters: 1 } },
    });
    // The default readiness check does not look at dead letters.
    await http().get('/health/ready').expect(200);
  });
});
