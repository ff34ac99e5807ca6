import { InvalidOptionError } from '../errors/invalid-option.error.js';
import { CONNECTION_OPTION_KEYS } from './connection-options.interface.js';
import { resolveConnection, type ResolvedConnection } from './resolve-connection.js';
import { SERVER_OPTION_KEYS, type ServerPostgresOptions } from './server-options.interface.js';
import { integerOption, rejectUnknownOptions, requiredString } from './validate.js';

export interface ResolvedServerOptions {
  readonly connection: ResolvedConnection;
  readonly group: string;
  readonly concurrency: number;
  readonly batchSize: number;
  readonly maxAttempts: number;
  readonly retryDelayMs: number;
  readonly maxRetryDelayMs: number;
  readonly leaseMs: number;
  readonly sweepIntervalMs: number;
  readonly shutdownTimeoutMs: number;
}

/** Group names are recipients: keep them printable and short enough for a NOTIFY hint. */
const MAX_GROUP_LENGTH = 200;

export function resolveServerOptions(options: ServerPostgresOptions): ResolvedServerOptions {
  if (!options || typeof options !== 'object') {
    throw new InvalidOptionError('options', 'ServerPostgres needs an options object with a group');
  }
  rejectUnknownOptions(
    options,
    [...CONNECTION_OPTION_KEYS, ...SERVER_OPTION_KEYS],
    'ServerPostgres',
  );
  const group = requiredString('group', options.group, '"shipping"');
  if (group.length > MAX_GROUP_LENGTH || hasControlCharacter(group) || group.startsWith('reply:')) {
    throw new InvalidOptionError(
      'group',
      `use up to ${MAX_GROUP_LENGTH} printable characters, not starting with "reply:"`,
    );
  }
  const retryDelayMs = integerOption('retryDelayMs', options.retryDelayMs, 1_000, { min: 1 });
  const maxRetryDelayMs = integerOption('maxRetryDelayMs', options.maxRetryDelayMs, 60_000, {
    min: retryDelayMs,
  });
  return {
    connection: resolveConnection(options, `nestjs-pg-transport:${group}`),
    group,
    concurrency: integerOption('concurrency', options.concurrency, 4, { min: 1, max: 256 }),
    // After a failure each message of a batch runs in a savepoint, a subtransaction. Past 64 in
    // one transaction PostgreSQL's per-backend subtransaction cache overflows, which slows every
    // snapshot on the server, so batches stay below it.
    batchSize: integerOption('batchSize', options.batchSize, 50, { min: 1, max: 64 }),
    maxAttempts: integerOption('maxAttempts', options.maxAttempts, 5, { min: 1, max: 1_000 }),
    retryDelayMs,
    maxRetryDelayMs,
    leaseMs: integerOption('leaseMs', options.leaseMs, 30_000, { min: 100 }),
    sweepIntervalMs: integerOption('sweepIntervalMs', options.sweepIntervalMs, 5_000, { min: 10 }),
    shutdownTimeoutMs: integerOption('shutdownTimeoutMs', options.shutdownTimeoutMs, 10_000),
  };
}

function hasControlCharacter(value: string): boolean {
  return [...value].some((char) => char.charCodeAt(0) < 0x20);
}
