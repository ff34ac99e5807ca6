import type pg from 'pg';
import type { PostgresListenerOptions } from '../listener/index.js';

/** Where the transport's tables live and how to reach them. Shared by module, server and client. */
export interface PostgresConnectionOptions {
  /** `postgres://` URL of the database. Give exactly one of connectionString, pool or poolConfig. */
  connectionString?: string;
  /** An existing pool. The transport uses it and never ends it. */
  pool?: pg.Pool;
  /** Settings for a pool the transport creates and ends. */
  poolConfig?: pg.PoolConfig;
  /**
   * Where the LISTEN connection goes. Default: the query connection. Set it when queries go
   * through PgBouncer in transaction mode, which cannot deliver notifications: LISTEN goes direct.
   */
  listenConnectionString?: string;
  /** Schema of the transport's tables. Default `nestjs_transport`. */
  schema?: string;
  /** Apply pending migrations on start-up. Default `true`; turn off if you run `migrate()` yourself. */
  migrationsRun?: boolean;
  /**
   * Run the hot statements as named prepared statements, parsed and planned once per connection,
   * and send the BEGIN of the transactions the library opens with their first statement (BEGIN
   * is one of those statements). Default `true`; set `false` behind PgBouncer in transaction mode
   * older than 1.21.
   */
  preparedStatements?: boolean;
  /**
   * The least time between two wake-up NOTIFYs this server or client sends after commits.
   * Default `0`: each is sent as soon as the previous one has been (hints gathered meanwhile go
   * together). A few milliseconds cut PostgreSQL's CPU for publish-heavy loads (each NOTIFY is a
   * small transaction that wakes every listening session), at up to that much wake-up latency
   * for a consumer that went idle. Sparse traffic never waits. At most 1000.
   */
  wakeupIntervalMs?: number;
  /** Heartbeat, backoff and self-test settings of the shared LISTEN connection. */
  listener?: Omit<PostgresListenerOptions, 'connectionString' | 'connection' | 'logger'>;
}

export const CONNECTION_OPTION_KEYS = [
  'connectionString',
  'pool',
  'poolConfig',
  'listenConnectionString',
  'schema',
  'migrationsRun',
  'preparedStatements',
  'wakeupIntervalMs',
  'listener',
] as const;
