import type { DeadLetterScope } from '../sql/admin.queries.js';
import type { DeadLetterFilter } from './dead-letter.js';
import { InvalidArgumentError } from './invalid-argument.error.js';

const MAX_BIGINT = 9_223_372_036_854_775_807n;

/** A message id (bigint) from a string, number or bigint, as a decimal string for `$n::bigint`. */
export function messageIdOf(argument: string, value: unknown): string {
  let id: bigint | undefined;
  if (typeof value === 'bigint') id = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) id = BigInt(value);
  else if (typeof value === 'string' && /^\d{1,19}$/.test(value)) id = BigInt(value);
  if (id === undefined || id < 1n || id > MAX_BIGINT) {
    throw new InvalidArgumentError(
      argument,
      `expected a message id: a positive integer up to ${MAX_BIGINT} as a number, bigint or ` +
        `decimal string, got ${describe(value)}`,
    );
  }
  return id.toString();
}

/** A page size within bounds, or the default. */
export function limitOf(value: unknown, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new InvalidArgumentError(
      'limit',
      `expected an integer from 1 to ${max}, got ${describe(value)}`,
    );
  }
  return value;
}

/** Validates the group and pattern filters. */
export function scopeOfFilter(filter: DeadLetterFilter | undefined): DeadLetterScope {
  if (filter === undefined) return {};
  if (typeof filter !== 'object' || filter === null) {
    throw new InvalidArgumentError('filter', 'expected an object such as { group: "orders" }');
  }
  return {
    group: optionalName('group', filter.group),
    pattern: optionalName('pattern', filter.pattern),
  };
}

function optionalName(argument: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.includes('\0')) {
    throw new InvalidArgumentError(argument, `expected a non-empty string, got ${describe(value)}`);
  }
  return value;
}

function describe(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string')
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null)
    return String(value);
  return typeof value;
}
