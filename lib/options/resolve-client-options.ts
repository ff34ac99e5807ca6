import type pg from 'pg';
import { InvalidOptionError } from '../errors/invalid-option.error.js';
import { CLIENT_OPTION_KEYS, type ClientPostgresOptions } from './client-options.interface.js';
import { CONNECTION_OPTION_KEYS } from './connection-options.interface.js';
import { resolveConnection, type ResolvedConnection } from './resolve-connection.js';
import { integerOption, rejectUnknownOptions } from './validate.js';

export interface ResolvedClientOptions {
  readonly connection: ResolvedConnection;
  readonly replyTimeoutMs: number;
  readonly maxPayloadBytes: number;
  readonly replyPollIntervalMs: number;
  readonly externalTransaction: (() => pg.ClientBase | undefined) | undefined;
}

export const DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024;

export function resolveClientOptions(options: ClientPostgresOptions): ResolvedClientOptions {
  if (!options || typeof options !== 'object') {
    throw new InvalidOptionError('options', 'ClientPostgres needs an options object');
  }
  rejectUnknownOptions(
    options,
    [...CONNECTION_OPTION_KEYS, ...CLIENT_OPTION_KEYS],
    'ClientPostgres',
  );
  return {
    connection: resolveConnection(options, 'nestjs-pg-transport:client'),
    replyTimeoutMs: integerOption('replyTimeoutMs', options.replyTimeoutMs, 30_000, { min: 1 }),
    maxPayloadBytes: integerOption(
      'maxPayloadBytes',
      options.maxPayloadBytes,
      DEFAULT_MAX_PAYLOAD_BYTES,
      {
        min: 1,
        max: 512 * 1024 * 1024,
      },
    ),
    externalTransaction: options.externalTransaction,
    replyPollIntervalMs: integerOption('replyPollIntervalMs', options.replyPollIntervalMs, 1_000, {
      min: 10,
    }),
  };
}
