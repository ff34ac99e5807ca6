import { integerOption, rejectUnknownOptions } from '../options/validate.js';

/** Injection token of `DeadLetterAdmin`'s options (optional). */
export const DEAD_LETTER_ADMIN_OPTIONS = Symbol('DEAD_LETTER_ADMIN_OPTIONS');

export interface DeadLetterAdminOptions {
  /**
   * Rows `requeueAll` and `purgeAll` change per statement; each batch commits on its own, so no
   * lock is held for long whatever the number of dead letters. Default 500.
   */
  batchSize?: number;
}

export interface ResolvedDeadLetterAdminOptions {
  readonly batchSize: number;
}

export const DEAD_LETTER_ADMIN_DEFAULTS = { batchSize: 500 } as const;

/** Largest page of `list`. */
export const MAX_LIST_LIMIT = 1_000;
export const DEFAULT_LIST_LIMIT = 50;

/** Validates once, at construction; throws `InvalidOptionError` naming the option. */
export function resolveDeadLetterAdminOptions(
  options: DeadLetterAdminOptions = {},
): ResolvedDeadLetterAdminOptions {
  rejectUnknownOptions(options, ['batchSize'], 'DeadLetterAdmin');
  return {
    batchSize: integerOption('batchSize', options.batchSize, DEAD_LETTER_ADMIN_DEFAULTS.batchSize, {
      min: 1,
      max: 100_000,
    }),
  };
}
