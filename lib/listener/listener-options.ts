import { Logger, type LoggerService } from '@nestjs/common';
import pg from 'pg';
import { InvalidListenerOptionError } from './listener.errors.js';
import { describeTarget } from './listener-target.js';

/** Capped exponential backoff between reconnect attempts (see docs/listener.md). */
export interface ListenerReconnectOptions {
  /** Floor of every delay and base of the exponential. Default 100. */
  initialDelayMs?: number;
  /** Ceiling of every delay; also the pace of retries after a fatal error. Default 10000. */
  maxDelayMs?: number;
  /** Connected this long, the next loss starts again from the first attempt. Default 30000. */
  stableAfterMs?: number;
}

export interface PostgresListenerOptions {
  /** Where to LISTEN. Exactly one of `connectionString` and `connection`. */
  connectionString?: string;
  connection?: pg.ClientConfig;
  /** Pause between heartbeats (`SELECT pg_listening_channels()`). Default 2000. */
  heartbeatIntervalMs?: number;
  /**
   * A heartbeat, or any other query of the listener, not answered this fast means the connection
   * is dead (typically half-open TCP); it is destroyed and replaced. Also bounds the self-test.
   * Default 3000.
   */
  heartbeatTimeoutMs?: number;
  /** Bound on TCP connect plus authentication for one attempt. Default 10000. */
  connectTimeoutMs?: number;
  reconnect?: ListenerReconnectOptions;
  /**
   * After each connect, NOTIFY a private channel and expect the notification back; when it does
   * not come (a pooler in transaction mode), log an error and report
   * `notificationsVerified: false`. Default true.
   */
  selfTest?: boolean;
  /** `application_name` of the LISTEN session. Default 'nestjs-pg-transport:listener'. */
  applicationName?: string;
  /** Where state changes are logged. Default: Nest's `Logger`. */
  logger?: LoggerService;
  /** Source of jitter in [0, 1). Default `Math.random`. */
  random?: () => number;
}

export const LISTENER_DEFAULTS = {
  heartbeatIntervalMs: 2_000,
  heartbeatTimeoutMs: 3_000,
  connectTimeoutMs: 10_000,
  reconnect: { initialDelayMs: 100, maxDelayMs: 10_000, stableAfterMs: 30_000 },
  selfTest: true,
  applicationName: 'nestjs-pg-transport:listener',
} as const;

/** PostgreSQL truncates `application_name` to NAMEDATALEN - 1 bytes. */
const MAX_APPLICATION_NAME_BYTES = 63;

/** Options after validation, with every default filled in; read directly after start-up. */
export interface ResolvedListenerOptions {
  /** Passed to `new pg.Client()` for each connection: TCP keepalive on, application name set. */
  clientConfig: pg.ClientConfig;
  /** `user@host:port/database`: the registry key and the name used in logs. */
  target: string;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  connectTimeoutMs: number;
  reconnect: Required<ListenerReconnectOptions>;
  selfTest: boolean;
  applicationName: string;
  logger: LoggerService;
  random: () => number;
  /** Strings scrubbed from every error message before it is logged or reported. */
  secrets: string[];
}

/** Validates `options` once and fills in defaults; throws `InvalidListenerOptionError`. */
export function resolveListenerOptions(options: PostgresListenerOptions): ResolvedListenerOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidListenerOptionError('options', 'expected an object');
  }
  const { connectionString, connection } = options;
  if ((connectionString === undefined) === (connection === undefined)) {
    throw new InvalidListenerOptionError(
      'connectionString',
      'pass exactly one of `connectionString` or `connection`',
    );
  }
  if (
    connectionString !== undefined &&
    (typeof connectionString !== 'string' || !connectionString)
  ) {
    throw new InvalidListenerOptionError('connectionString', 'expected a non-empty string');
  }
  if (connection !== undefined && (typeof connection !== 'object' || connection === null)) {
    throw new InvalidListenerOptionError('connection', 'expected a pg.ClientConfig object');
  }
  if (connection?.connectionString !== undefined) {
    throw new InvalidListenerOptionError(
      'connection.connectionString',
      'move it to the top-level `connectionString` option',
    );
  }

  const heartbeatIntervalMs = positive(options, 'heartbeatIntervalMs');
  const heartbeatTimeoutMs = positive(options, 'heartbeatTimeoutMs');
  const connectTimeoutMs = positive(options, 'connectTimeoutMs');
  const reconnect = resolveReconnect(options.reconnect);

  const selfTest = options.selfTest ?? LISTENER_DEFAULTS.selfTest;
  if (typeof selfTest !== 'boolean') {
    throw new InvalidListenerOptionError('selfTest', `expected a boolean; got ${String(selfTest)}`);
  }
  const applicationName = options.applicationName ?? LISTENER_DEFAULTS.applicationName;
  if (
    typeof applicationName !== 'string' ||
    !applicationName ||
    Buffer.byteLength(applicationName) > MAX_APPLICATION_NAME_BYTES
  ) {
    throw new InvalidListenerOptionError(
      'applicationName',
      `expected a non-empty string of at most ${MAX_APPLICATION_NAME_BYTES} bytes`,
    );
  }
  const logger = options.logger ?? new Logger();
  for (const method of ['log', 'warn', 'error'] as const) {
    if (typeof logger[method] !== 'function') {
      throw new InvalidListenerOptionError('logger', `expected a LoggerService with ${method}()`);
    }
  }
  const random = options.random ?? Math.random;
  if (typeof random !== 'function') {
    throw new InvalidListenerOptionError('random', 'expected a function returning [0, 1)');
  }

  const base: pg.ClientConfig = connectionString !== undefined ? { connectionString } : connection!;
  const clientConfig: pg.ClientConfig = {
    keepAliveInitialDelayMillis: 10_000,
    ...base,
    // Explicit: pg leaves TCP keepalive off, and the heartbeat alone cannot see a peer that
    // vanished while the process was suspended.
    keepAlive: true,
    // An explicit `applicationName` wins; otherwise the connection's own, then ours. (pg lets an
    // `application_name` parameter inside a connection string override both.)
    application_name: options.applicationName ?? base.application_name ?? applicationName,
  };
  try {
    // pg validates part of its config in the Client constructor (it opens no socket there):
    // surface those errors now, as option errors, rather than as endless reconnect attempts.
    new pg.Client(clientConfig);
  } catch (error) {
    throw new InvalidListenerOptionError(
      connectionString !== undefined ? 'connectionString' : 'connection',
      error instanceof Error ? error.message : String(error),
    );
  }
  const secrets = [
    connectionString,
    typeof connection?.password === 'string' && connection.password,
  ]
    .concat(connectionString ? [passwordOf(connectionString)] : [])
    .filter((secret): secret is string => typeof secret === 'string' && secret.length > 0);

  return {
    clientConfig,
    target: describeTarget({ connectionString, connection }),
    heartbeatIntervalMs,
    heartbeatTimeoutMs,
    connectTimeoutMs,
    reconnect,
    selfTest,
    applicationName: clientConfig.application_name ?? applicationName,
    logger,
    random,
    secrets,
  };
}

function resolveReconnect(
  reconnect: ListenerReconnectOptions | undefined,
): Required<ListenerReconnectOptions> {
  if (reconnect !== undefined && (typeof reconnect !== 'object' || reconnect === null)) {
    throw new InvalidListenerOptionError('reconnect', 'expected an object');
  }
  const initialDelayMs = positive(reconnect ?? {}, 'initialDelayMs', 'reconnect.');
  const maxDelayMs = positive(reconnect ?? {}, 'maxDelayMs', 'reconnect.');
  if (maxDelayMs < initialDelayMs) {
    throw new InvalidListenerOptionError(
      'reconnect.maxDelayMs',
      `must be >= reconnect.initialDelayMs (${initialDelayMs}); got ${maxDelayMs}`,
    );
  }
  const stableAfterMs = reconnect?.stableAfterMs ?? LISTENER_DEFAULTS.reconnect.stableAfterMs;
  if (typeof stableAfterMs !== 'number' || !Number.isFinite(stableAfterMs) || stableAfterMs < 0) {
    throw new InvalidListenerOptionError(
      'reconnect.stableAfterMs',
      `expected a finite number >= 0; got ${String(stableAfterMs)}`,
    );
  }
  return { initialDelayMs, maxDelayMs, stableAfterMs };
}

type NumericOption =
  | 'heartbeatIntervalMs'
  | 'heartbeatTimeoutMs'
  | 'connectTimeoutMs'
  | 'initialDelayMs'
  | 'maxDelayMs';

/** Reads a duration that must be a finite number > 0 (0 would make a tight loop). */
function positive(
  source: Partial<Record<NumericOption, unknown>>,
  name: NumericOption,
  prefix = '',
): number {
  const defaults: Record<NumericOption, number> = {
    heartbeatIntervalMs: LISTENER_DEFAULTS.heartbeatIntervalMs,
    heartbeatTimeoutMs: LISTENER_DEFAULTS.heartbeatTimeoutMs,
    connectTimeoutMs: LISTENER_DEFAULTS.connectTimeoutMs,
    initialDelayMs: LISTENER_DEFAULTS.reconnect.initialDelayMs,
    maxDelayMs: LISTENER_DEFAULTS.reconnect.maxDelayMs,
  };
  const value = source[name] ?? defaults[name];
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidListenerOptionError(
      `${prefix}${name}`,
      `expected a finite number of milliseconds > 0; got ${String(value)}`,
    );
  }
  return value;
}

function passwordOf(connectionString: string): string | undefined {
  try {
    return decodeURIComponent(new URL(connectionString).password) || undefined;
  } catch {
    return undefined;
  }
}
