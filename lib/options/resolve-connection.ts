import { Logger } from '@nestjs/common';
import pg from 'pg';
import { InvalidOptionError } from '../errors/invalid-option.error.js';
import type { PostgresListenerOptions } from '../listener/index.js';
import { quoteSchemaOption } from '../sql/identifiers.js';
import { targetOfClient } from '../transaction/client-target.js';
import type { PostgresConnectionOptions } from './connection-options.interface.js';
import { booleanOption, integerOption } from './validate.js';

export const DEFAULT_SCHEMA = 'nestjs_transport';

/** Connection options after validation. Nothing downstream re-checks these fields. */
export interface ResolvedConnection {
  /** Creates the pool on first use, so options can be validated before anything connects. */
  readonly pool: () => pg.Pool;
  /** Whether the transport created the pool and must end it. */
  readonly ownsPool: boolean;
  readonly schemaName: string;
  /** The schema, quoted for SQL text. */
  readonly schema: string;
  /** The NOTIFY channel carrying wake-up hints for this schema. */
  readonly channel: string;
  readonly migrationsRun: boolean;
  readonly preparedStatements: boolean;
  /** The least milliseconds between two after-commit wake-up NOTIFYs. */
  readonly wakeupIntervalMs: number;
  /** Options of the shared LISTEN connection. */
  readonly listener: PostgresListenerOptions;
  /** host:port/database, without credentials: identifies the database for joining transactions. */
  readonly target: string;
}

/** Validates connection options once, at start-up. */
export function resolveConnection(
  options: PostgresConnectionOptions,
  applicationName: string,
): ResolvedConnection {
  const given = ['connectionString', 'pool', 'poolConfig'].filter(
    (key) => options[key as keyof PostgresConnectionOptions] !== undefined,
  );
  if (given.length !== 1) {
    throw new InvalidOptionError(
      'connectionString',
      given.length === 0
        ? 'give one of connectionString, pool or poolConfig, e.g. connectionString: process.env.DATABASE_URL'
        : `give only one of connectionString, pool or poolConfig (got ${given.join(', ')})`,
    );
  }
  if (options.connectionString !== undefined)
    parseUrl('connectionString', options.connectionString);
  if (options.pool !== undefined && !(options.pool instanceof pg.Pool)) {
    throw new InvalidOptionError('pool', 'expected a pg.Pool instance');
  }
  const schemaName = options.schema ?? DEFAULT_SCHEMA;
  const schema = quoteSchemaOption('schema', schemaName);
  const poolConfig: pg.PoolConfig = options.pool
    ? ((options.pool as unknown as { options: pg.PoolConfig }).options ?? {})
    : (options.poolConfig ?? { connectionString: options.connectionString });
  const listenConnection = options.listenConnectionString
    ? { connectionString: parseUrl('listenConnectionString', options.listenConnectionString) }
    : listenerConnectionOf(poolConfig);

  let pool: pg.Pool | undefined = options.pool;
  return {
    pool: () =>
      (pool ??= createPool({ application_name: applicationName, max: 10, ...poolConfig })),
    ownsPool: options.pool === undefined,
    schemaName,
    schema,
    channel: `${schemaName}:wake`,
    migrationsRun: booleanOption('migrationsRun', options.migrationsRun, true),
    preparedStatements: booleanOption('preparedStatements', options.preparedStatements, true),
    wakeupIntervalMs: integerOption('wakeupIntervalMs', options.wakeupIntervalMs, 0, {
      max: 1_000,
    }),
    listener: { ...options.listener, ...listenConnection },
    target: targetOf(poolConfig),
  };
}

function parseUrl(option: string, value: unknown): string {
  if (typeof value !== 'string') throw new InvalidOptionError(option, 'expected a postgres:// URL');
  try {
    const url = new URL(value);
    if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') throw new Error();
  } catch {
    // Never echo the value: it may hold a password.
    throw new InvalidOptionError(option, 'expected a postgres:// or postgresql:// URL');
  }
  return value;
}

/** The LISTEN connection goes where the pool goes, as one dedicated client. */
function listenerConnectionOf(
  config: pg.PoolConfig,
): { connectionString: string } | { connection: pg.ClientConfig } {
  const { max: _max, min: _min, idleTimeoutMillis: _idle, ...client } = config;
  // Settings beside a connection string (ssl, timeouts) apply to the pool; give the listener its
  // own through listenConnectionString when it needs them.
  if (client.connectionString) return { connectionString: client.connectionString };
  return { connection: client };
}

const poolLogger = new Logger('PostgresTransport');

function createPool(config: pg.PoolConfig): pg.Pool {
  const pool = new pg.Pool(config);
  // An idle client whose connection dies makes the pool emit 'error'; unhandled, that would end
  // the process. The pool discards the client and the next query opens a new one.
  pool.on('error', (error) =>
    poolLogger.warn(`An idle pooled connection failed: ${error.message}`),
  );
  return pool;
}

/**
 * host:port/database of a connection config, without user or password. pg's own parameter
 * resolution (URL, PG* environment variables, defaults) runs on an unconnected client, so the
 * result matches what a connected client reports.
 */
export function targetOf(config: pg.ClientConfig): string {
  return targetOfClient(new pg.Client(config));
}
