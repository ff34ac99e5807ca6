import { InvalidOptionError } from '../errors/invalid-option.error.js';
import { integerOption, rejectUnknownOptions } from '../options/validate.js';

/** Injection token of the indicator's default options (optional). */
export const POSTGRES_HEALTH_OPTIONS = Symbol('POSTGRES_HEALTH_OPTIONS');

/** Thresholds that can differ per consumer group. `null` turns a check off for the group. */
export interface GroupHealthThresholds {
  /** Overrides `maxPendingAgeMs` for this group. */
  maxPendingAgeMs?: number | null;
  /** Overrides `maxDeadLetters` for this group. */
  maxDeadLetters?: number | null;
}

/** Settings of `PostgresHealthIndicator`, as defaults for the instance or per call. */
export interface PostgresHealthOptions {
  /** Bound on the whole database part of `isHealthy` (pool checkout included). Default 1000 ms. */
  timeoutMs?: number;
  /** Down once the LISTEN connection has not been connected for longer. Default 30000 ms. */
  maxListenerDownMs?: number;
  /**
   * Down once a group's most overdue pending message has waited longer (from when it became
   * due). Default 300000 ms (5 minutes); `null` turns it off.
   */
  maxPendingAgeMs?: number | null;
  /** Down once a group holds more dead letters. Default `null`: not checked. */
  maxDeadLetters?: number | null;
  /** Per-group overrides, by group name. */
  groups?: Record<string, GroupHealthThresholds>;
  /**
   * Pending and dead-letter counts stop at this number, so the probe stays cheap on a huge
   * backlog (the count then reads exactly this number). Default 10000.
   */
  countLimit?: number;
}

export const HEALTH_DEFAULTS = {
  timeoutMs: 1_000,
  maxListenerDownMs: 30_000,
  maxPendingAgeMs: 300_000,
  maxDeadLetters: null,
  countLimit: 10_000,
} as const;

/** Options after validation, every default applied. */
export interface ResolvedHealthOptions {
  readonly timeoutMs: number;
  readonly maxListenerDownMs: number;
  readonly maxPendingAgeMs: number | null;
  readonly maxDeadLetters: number | null;
  /** Per-group overrides; a field left undefined falls back to the global threshold. */
  readonly groups: ReadonlyMap<string, GroupHealthThresholds>;
  readonly countLimit: number;
}

const OPTION_KEYS = [
  'timeoutMs',
  'maxListenerDownMs',
  'maxPendingAgeMs',
  'maxDeadLetters',
  'groups',
  'countLimit',
] as const;
const GROUP_KEYS = ['maxPendingAgeMs', 'maxDeadLetters'] as const;
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Validates options (throws `InvalidOptionError` naming the option) and applies defaults, taken
 * from `base` when given: per-call options override the instance's field by field.
 */
export function resolveHealthOptions(
  options: PostgresHealthOptions | undefined,
  base?: ResolvedHealthOptions,
): ResolvedHealthOptions {
  if (options === undefined && base) return base;
  const given = options ?? {};
  if (typeof given !== 'object' || given === null) {
    throw new InvalidOptionError('PostgresHealthOptions', 'expected an object');
  }
  rejectUnknownOptions(given, OPTION_KEYS, 'PostgresHealthIndicator');
  const defaults = base ?? { ...HEALTH_DEFAULTS, groups: new Map() };
  return {
    timeoutMs: integerOption('timeoutMs', given.timeoutMs, defaults.timeoutMs, {
      min: 1,
      max: MAX_TIMER_MS,
    }),
    maxListenerDownMs: integerOption(
      'maxListenerDownMs',
      given.maxListenerDownMs,
      defaults.maxListenerDownMs,
    ),
    maxPendingAgeMs: nullable('maxPendingAgeMs', given.maxPendingAgeMs, defaults.maxPendingAgeMs),
    maxDeadLetters: nullable('maxDeadLetters', given.maxDeadLetters, defaults.maxDeadLetters),
    groups: given.groups === undefined ? defaults.groups : resolveGroups(given.groups),
    countLimit: integerOption('countLimit', given.countLimit, defaults.countLimit, { min: 1 }),
  };
}

function resolveGroups(groups: unknown): Map<string, GroupHealthThresholds> {
  if (typeof groups !== 'object' || groups === null || Array.isArray(groups)) {
    throw new InvalidOptionError('groups', 'expected an object keyed by group name');
  }
  const resolved = new Map<string, GroupHealthThresholds>();
  for (const [group, thresholds] of Object.entries(groups as Record<string, unknown>)) {
    const where = `groups.${group}`;
    if (typeof thresholds !== 'object' || thresholds === null) {
      throw new InvalidOptionError(where, 'expected { maxPendingAgeMs?, maxDeadLetters? }');
    }
    rejectUnknownOptions(thresholds, GROUP_KEYS, `${where} of PostgresHealthIndicator`);
    const given = thresholds as GroupHealthThresholds;
    resolved.set(group, {
      maxPendingAgeMs: nullable(`${where}.maxPendingAgeMs`, given.maxPendingAgeMs, undefined),
      maxDeadLetters: nullable(`${where}.maxDeadLetters`, given.maxDeadLetters, undefined),
    });
  }
  return resolved;
}

/** A non-negative integer, `null` (check off), or `fallback` when undefined. */
function nullable<F extends number | null | undefined>(
  option: string,
  value: unknown,
  fallback: F,
): number | null | F {
  if (value === undefined) return fallback;
  if (value === null) return null;
  return integerOption(option, value, 0);
}
