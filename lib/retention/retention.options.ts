import { InvalidOptionError } from '../errors/invalid-option.error.js';
import { booleanOption, integerOption, rejectUnknownOptions } from '../options/validate.js';

/** Injection token of `RetentionJob`'s options (optional). */
export const POSTGRES_RETENTION_OPTIONS = Symbol('POSTGRES_RETENTION_OPTIONS');

const DAY_MS = 24 * 60 * 60 * 1000;

/** Settings of `RetentionJob`. */
export interface RetentionOptions {
  /**
   * Consumed rows older than this are deleted. It is also the deduplication window: an
   * idempotency key is remembered only while its row exists, so a message re-sent with the same
   * key after its row was deleted is delivered again. Default 7 days.
   */
  retentionMs?: number;
  /** Dead letters older than this are deleted too. Default `null`: kept until purged. */
  deadLetterRetentionMs?: number | null;
  /** Pause between passes. Default 60000 ms. */
  intervalMs?: number;
  /** Rows deleted per statement; each batch commits on its own. Default 1000. */
  batchSize?: number;
  /** Run passes on a timer from application bootstrap. `false`: only `runOnce()`. Default true. */
  enabled?: boolean;
}

export interface ResolvedRetentionOptions {
  readonly retentionMs: number;
  readonly deadLetterRetentionMs: number | null;
  readonly intervalMs: number;
  readonly batchSize: number;
  readonly enabled: boolean;
}

export const RETENTION_DEFAULTS = {
  retentionMs: 7 * DAY_MS,
  deadLetterRetentionMs: null,
  intervalMs: 60_000,
  batchSize: 1_000,
  enabled: true,
} as const;

/**
 * Replies nobody took and expired requests are deleted only once older than this as well, even
 * with a shorter `retentionMs`: a reply younger than that may still be on its way to a client.
 */
export const ABANDONED_MIN_AGE_MS = 60 * 60 * 1000;

const KEYS = ['retentionMs', 'deadLetterRetentionMs', 'intervalMs', 'batchSize', 'enabled'];
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Validates once, at construction; throws `InvalidOptionError` naming the option. */
export function resolveRetentionOptions(options: RetentionOptions = {}): ResolvedRetentionOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('RetentionOptions', 'expected an object');
  }
  rejectUnknownOptions(options, KEYS, 'RetentionJob');
  const { deadLetterRetentionMs } = options;
  return {
    retentionMs: integerOption('retentionMs', options.retentionMs, RETENTION_DEFAULTS.retentionMs),
    deadLetterRetentionMs:
      deadLetterRetentionMs === undefined || deadLetterRetentionMs === null
        ? null
        : integerOption('deadLetterRetentionMs', deadLetterRetentionMs, 0),
    intervalMs: integerOption('intervalMs', options.intervalMs, RETENTION_DEFAULTS.intervalMs, {
      min: 1,
      max: MAX_TIMER_MS,
    }),
    batchSize: integerOption('batchSize', options.batchSize, RETENTION_DEFAULTS.batchSize, {
      min: 1,
      max: 100_000,
    }),
    enabled: booleanOption('enabled', options.enabled, RETENTION_DEFAULTS.enabled),
  };
}
