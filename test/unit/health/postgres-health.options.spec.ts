import { describe, expect, it } from '@jest/globals';
import { InvalidOptionError } from '../../../lib/errors/index.js';
import {
  HEALTH_DEFAULTS,
  resolveHealthOptions,
} from '../../../lib/health/postgres-health.options.js';

describe('resolveHealthOptions', () => {
  it('applies the documented defaults', () => {
    expect(resolveHealthOptions(undefined)).toEqual({
      timeoutMs: 1_000,
      maxListenerDownMs: 30_000,
      maxPendingAgeMs: 300_000,
      maxDeadLetters: null,
      countLimit: 10_000,
      groups: new Map(),
    });
    expect(HEALTH_DEFAULTS.timeoutMs).toBe(1_000);
  });

  it('lets per-call options override the instance field by field', () => {
    const base = resolveHealthOptions({
      maxPendingAgeMs: 1_000,
      groups: { a: { maxDeadLetters: 3 } },
    });
    const call = resolveHealthOptions({ maxDeadLetters: 7 }, base);
    expect(call.maxPendingAgeMs).toBe(1_000);
    expect(call.maxDeadLetters).toBe(7);
    expect(call.groups.get('a')).toEqual({ maxPendingAgeMs: undefined, maxDeadLetters: 3 });
    expect(resolveHealthOptions(undefined, base)).toBe(base);
    expect(resolveHealthOptions({ maxPendingAgeMs: null }, base).maxPendingAgeMs).toBeNull();
  });

  it.each([
    [{ timeoutMs: 0 }, 'timeoutMs'],
    [{ timeoutMs: 2 ** 31 }, 'timeoutMs'],
    [{ maxListenerDownMs: -1 }, 'maxListenerDownMs'],
    [{ maxPendingAgeMs: '5' }, 'maxPendingAgeMs'],
    [{ maxDeadLetters: 1.5 }, 'maxDeadLetters'],
    [{ countLimit: 0 }, 'countLimit'],
    [{ groups: [] }, 'groups'],
    [{ groups: { orders: 5 } }, 'groups.orders'],
    [{ groups: { orders: { maxPendingAgeMs: -5 } } }, 'groups.orders.maxPendingAgeMs'],
    [{ groups: { orders: { maxAge: 5 } } }, 'maxAge'],
    [{ timeout: 5 }, 'timeout'],
  ])('rejects %j naming %s', (options, option) => {
    let error: unknown;
    try {
      resolveHealthOptions(options as never);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as InvalidOptionError).option).toBe(option);
  });
});
