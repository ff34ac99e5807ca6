import { describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { InvalidOptionError } from '../../../lib/errors/index.js';
import { resolveClientOptions } from '../../../lib/options/resolve-client-options.js';
import { resolveServerOptions } from '../../../lib/options/resolve-server-options.js';

const connectionString = 'postgres://app:s3cret@db.internal:6543/shop';

describe('option resolution', () => {
  it('applies documented defaults once', () => {
    const options = resolveServerOptions({ connectionString, group: 'shipping' });
    expect(options).toMatchObject({
      group: 'shipping',
      concurrency: 4,
      batchSize: 50,
      maxAttempts: 5,
      retryDelayMs: 1_000,
      maxRetryDelayMs: 60_000,
      leaseMs: 30_000,
      sweepIntervalMs: 5_000,
      shutdownTimeoutMs: 10_000,
    });
    expect(options.connection).toMatchObject({
      schemaName: 'nestjs_transport',
      schema: '"nestjs_transport"',
      channel: 'nestjs_transport:wake',
      migrationsRun: true,
      wakeupIntervalMs: 0,
      ownsPool: true,
      target: 'db.internal:6543/shop',
    });
    expect(resolveClientOptions({ connectionString })).toMatchObject({
      replyTimeoutMs: 30_000,
      maxPayloadBytes: 16 * 1024 * 1024,
    });
  });

  it('never owns a pool it was given', () => {
    const pool = new pg.Pool({ connectionString });
    const { connection } = resolveClientOptions({ pool });
    expect(connection.ownsPool).toBe(false);
    expect(connection.pool()).toBe(pool);
  });

  it.each([
    [{ group: 'g', connectionString, pool: new pg.Pool() }, 'connectionString'],
    [{ group: 'g', connectionString: 'http://x' }, 'connectionString'],
    [{ group: 'g', connectionString, schema: 'x'.repeat(59) }, 'schema'],
    [{ group: 'reply:x', connectionString }, 'group'],
    [{ group: 'a\nb', connectionString }, 'group'],
    [{ group: 'g', connectionString, migrationsRun: 'yes' }, 'migrationsRun'],
    [{ group: 'g', connectionString, leaseMs: 10 }, 'leaseMs'],
    [{ group: 'g', connectionString, batchSize: 65 }, 'batchSize'],
    [{ group: 'g', connectionString, wakeupIntervalMs: -1 }, 'wakeupIntervalMs'],
    [{ group: 'g', connectionString, wakeupIntervalMs: 2.5 }, 'wakeupIntervalMs'],
    [{ group: 'g', connectionString, wakeupIntervalMs: 1_001 }, 'wakeupIntervalMs'],
  ])('refuses %j, naming "%s"', (options, option) => {
    const resolve = () => resolveServerOptions(options as any);
    expect(resolve).toThrow(InvalidOptionError);
    expect(resolve).toThrow(`"${option}"`);
  });

  it('quotes a schema name with quotes in it', () => {
    const { connection } = resolveClientOptions({ connectionString, schema: 'my "bus"' });
    expect(connection.schema).toBe('"my ""bus"""');
  });
});
