import { describe, expect, it } from '@jest/globals';
import { InvalidListenerOptionError } from '../../../lib/listener/listener.errors.js';
import {
  LISTENER_DEFAULTS,
  resolveListenerOptions,
  type PostgresListenerOptions,
} from '../../../lib/listener/listener-options.js';

const url = 'postgres://app:s3cret@db.internal:6543/orders';

function optionError(options: unknown): InvalidListenerOptionError {
  try {
    resolveListenerOptions(options as PostgresListenerOptions);
  } catch (error) {
    if (error instanceof InvalidListenerOptionError) return error;
    throw error;
  }
  throw new Error('expected resolveListenerOptions to throw');
}

describe('resolveListenerOptions', () => {
  it('fills in every default', () => {
    const resolved = resolveListenerOptions({ connectionString: url });
    expect(resolved).toMatchObject({
      heartbeatIntervalMs: 2_000,
      heartbeatTimeoutMs: 3_000,
      connectTimeoutMs: 10_000,
      reconnect: { initialDelayMs: 100, maxDelayMs: 10_000, stableAfterMs: 30_000 },
      selfTest: true,
      applicationName: LISTENER_DEFAULTS.applicationName,
      random: Math.random,
      target: 'app@db.internal:6543/orders',
    });
    expect(resolved.clientConfig).toMatchObject({
      connectionString: url,
      keepAlive: true,
      application_name: 'nestjs-pg-transport:listener',
    });
  });

  it('keeps TCP keepalive on even if the connection config turns it off', () => {
    const resolved = resolveListenerOptions({
      connection: { host: 'h', keepAlive: false, application_name: 'mine' },
    });
    expect(resolved.clientConfig).toMatchObject({ keepAlive: true, application_name: 'mine' });
    expect(
      resolveListenerOptions({ connection: { application_name: 'mine' }, applicationName: 'ours' })
        .clientConfig.application_name,
    ).toBe('ours');
  });

  it('lists the password and the connection string as secrets to scrub', () => {
    expect(resolveListenerOptions({ connectionString: url }).secrets).toEqual(
      expect.arrayContaining([url, 's3cret']),
    );
    expect(resolveListenerOptions({ connection: { password: 'pw' } }).secrets).toEqual(['pw']);
  });

  it.each([
    [{}, 'connectionString'],
    [{ connectionString: url, connection: {} }, 'connectionString'],
    [{ connectionString: '' }, 'connectionString'],
    [{ connection: 'postgres://x' }, 'connection'],
    [{ connection: { connectionString: url } }, 'connection.connectionString'],
    [{ connection: { sslnegotiation: 'sideways' } }, 'connection'],
    [{ connectionString: url, heartbeatIntervalMs: 0 }, 'heartbeatIntervalMs'],
    [{ connectionString: url, heartbeatTimeoutMs: -1 }, 'heartbeatTimeoutMs'],
    [{ connectionString: url, connectTimeoutMs: Infinity }, 'connectTimeoutMs'],
    [{ connectionString: url, reconnect: { initialDelayMs: 0 } }, 'reconnect.initialDelayMs'],
    [{ connectionString: url, reconnect: { maxDelayMs: 50 } }, 'reconnect.maxDelayMs'],
    [{ connectionString: url, reconnect: { stableAfterMs: -5 } }, 'reconnect.stableAfterMs'],
    [{ connectionString: url, selfTest: 'yes' }, 'selfTest'],
    [{ connectionString: url, applicationName: 'x'.repeat(64) }, 'applicationName'],
    [{ connectionString: url, logger: { log: () => undefined } }, 'logger'],
    [{ connectionString: url, random: 0.5 }, 'random'],
  ])('rejects %o, naming `%s`', (options, option) => {
    const error = optionError(options);
    expect(error.option).toBe(option);
    expect(error.message).toContain(`\`${option}\``);
  });
});
