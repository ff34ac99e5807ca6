import { describe, expect, it } from '@jest/globals';
import { limitOf, messageIdOf, scopeOfFilter } from '../../../lib/admin/admin-arguments.js';
import { InvalidArgumentError } from '../../../lib/admin/invalid-argument.error.js';
import { PostgresTransportError } from '../../../lib/errors/index.js';
import { scopeOf } from '../../../lib/sql/admin.queries.js';

describe('admin arguments', () => {
  it('accepts ids as numbers, bigints and decimal strings up to the bigint maximum', () => {
    expect(messageIdOf('id', 42)).toBe('42');
    expect(messageIdOf('id', 42n)).toBe('42');
    expect(messageIdOf('id', '9223372036854775807')).toBe('9223372036854775807');
  });

  it.each([
    0,
    -1,
    1.5,
    Number.MAX_SAFE_INTEGER + 1,
    '',
    '12a',
    ' 1',
    '-3',
    '0x10',
    '9223372036854775808',
    null,
    undefined,
    {},
    0n,
  ])('rejects the id %p with a typed error', (value) => {
    expect(() => messageIdOf('id', value)).toThrow(InvalidArgumentError);
    expect(() => messageIdOf('id', value)).toThrow(/^Invalid argument "id": expected a message id/);
  });

  it('bounds the page size', () => {
    expect(limitOf(undefined, 50, 1_000)).toBe(50);
    expect(limitOf(1_000, 50, 1_000)).toBe(1_000);
    for (const bad of [0, 1_001, 2.5, '10']) {
      expect(() => limitOf(bad, 50, 1_000)).toThrow(PostgresTransportError);
    }
  });

  it('validates filters and turns only the given ones into conditions', () => {
    expect(scopeOfFilter({ group: 'orders' })).toEqual({ group: 'orders', pattern: undefined });
    expect(() => scopeOfFilter({ group: '' })).toThrow(/"group"/);
    expect(() => scopeOfFilter({ pattern: 5 as never })).toThrow(/"pattern"/);
    expect(scopeOf({}, 1)).toEqual({ where: 'dead_at IS NOT NULL', values: [], next: 1 });
    expect(scopeOf({ group: 'g', pattern: 'p' }, 3)).toEqual({
      where: 'dead_at IS NOT NULL AND recipient = $3 AND pattern = $4',
      values: ['g', 'p'],
      next: 5,
    });
  });
});
