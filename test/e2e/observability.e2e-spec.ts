import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, Logger, type LoggerService } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { lastValueFrom, toArray } from 'rxjs';
import {
  ClientPostgres,
  POSTGRES_TRANSPORT,
  PostgresContext,
  type MessageOutcome,
  type ServerPostgres,
} from '../../lib/index.js';
import { createTestDatabase, withDatabase, type TestDatabase } from '../helpers/database.js';
import { query, startClient, startServer } from '../helpers/transport.js';
import { waitFor } from '../helpers/wait-for.js';

const PASSWORD = 'Zx9-very-secret-Pa55word';

/** Collects every log line the library writes. */
class CapturingLogger implements LoggerService {
  readonly lines: string[] = [];
  private push(level: string, args: unknown[]) {
    this.lines.push(
      `${level} ${args.map((a) => (a instanceof Error ? a.stack : String(a))).join(' ')}`,
    );
  }
  log = (...args: unknown[]) => this.push('log', args);
  error = (...args: unknown[]) => this.push('error', args);
  warn = (...args: unknown[]) => this.push('warn', args);
  debug = (...args: unknown[]) => this.push('debug', args);
  verbose = (...args: unknown[]) => this.push('verbose', args);
}

@Controller()
class Handlers {
  @EventPattern<string>('work', POSTGRES_TRANSPORT)
  async work(@Payload() body: { fail?: boolean }, @Ctx() ctx: PostgresContext) {
    if (body.fail && ctx.getAttempt() < 2) throw new Error('first attempt fails');
  }
}

describe('observability', () => {
  let db: TestDatabase;
  let url: string;
  let server: ServerPostgres;
  let client: ClientPostgres;
  let close: () => Promise<void>;
  const logger = new CapturingLogger();

  beforeAll(async () => {
    db = await createTestDatabase();
    const role = `app_${db.name}`;
    await query(db.url, `CREATE ROLE ${role} LOGIN PASSWORD '${PASSWORD}'`);
    await query(db.url, `GRANT ALL ON DATABASE ${db.name} TO ${role}`);
    await query(db.url, `CREATE ROLE ${role}_nologin NOLOGIN PASSWORD '${PASSWORD}'`);
    const parsed = new URL(withDatabase(process.env.DATABASE_URL!, db.name));
    parsed.username = role;
    parsed.password = PASSWORD;
    url = parsed.toString();
    const started = await startServer(url, [Handlers], {
      group: 'observed',
      retryDelayMs: 10,
      maxRetryDelayMs: 20,
    });
    server = started.server;
    client = await startClient(url);
    // After start-up: creating a microservice with logger: false resets the global logger.
    Logger.overrideLogger(logger);
    close = async () => {
      await client.close();
      await started.app.close();
    };
  });

  afterAll(async () => {
    Logger.overrideLogger(false);
    await db.drop();
    // Roles outlive their database.
    await query(process.env.DATABASE_URL!, `DROP ROLE app_${db.name}, app_${db.name}_nologin`);
  });

  it('reports each outcome and keeps counters', async () => {
    const outcomes = server.outcomes$;
    const seen: MessageOutcome[] = [];
    const subscription = outcomes.subscribe((o) => seen.push(o));
    await lastValueFrom(client.emit('work', {}));
    await lastValueFrom(client.emit('work', { fail: true }));
    await waitFor(() => seen.filter((o) => o.type === 'handled').length === 2, {
      message: 'two handled outcomes',
    });
    subscription.unsubscribe();
    expect(seen.map((o) => [o.type, o.attempt])).toEqual(
      expect.arrayContaining([
        ['handled', 1],
        ['failed', 1],
        ['handled', 2],
      ]),
    );
    for (const outcome of seen) {
      expect(outcome.queuedMs).toBeGreaterThanOrEqual(0);
      expect(outcome.durationMs).toBeGreaterThanOrEqual(0);
    }
    expect(server.counters).toEqual({ handled: 2, failed: 1, deadLettered: 0, redelivered: 1 });
  });

  it('never writes the password to a log line or an error, even while failing', async () => {
    // A client refused at login (a role that may not log in, with a wrong password: a server
    // that trusts its clients refuses it too), and a listener connection killed under the server.
    const wrong = new URL(url);
    wrong.username = `${wrong.username}_nologin`;
    wrong.password = `${PASSWORD}-wrong`;
    const bad = new ClientPostgres({ connectionString: wrong.toString() });
    const error = await bad.connect().catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(Error);
    expect(String((error as Error).message)).not.toContain(PASSWORD);
    await bad.close();
    const { listener } = server.unwrap<{ listener: { backendPid: number } }>();
    await query(db.url, 'SELECT pg_terminate_backend($1)', [listener.backendPid]);
    await waitFor(() => logger.lines.some((line) => /Lost the connection/.test(line)), {
      message: 'a lost-connection log line',
    });
    await lastValueFrom(client.emit('work', {}).pipe(toArray()));
    await close();
    expect(logger.lines.length).toBeGreaterThan(0);
    for (const line of logger.lines) expect(line).not.toContain(PASSWORD);
  });
});
