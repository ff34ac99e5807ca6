import { describe, expect, it } from '@jest/globals';
import { InvalidOptionError } from '../../../lib/errors/index.js';
import { resolveRetentionOptions } from '../../../lib/retention/retention.options.js';
import { resolveDeadLetterAdminOptions } from '../../../lib/admin/dead-letter-admin.options.js';

describe('resolveRetentionOptions', () => {
  it('applies the documented defaults', () => {
    expect(resolveRetentionOptions()).toEqual({
      retentionMs: 7 * 24 * 60 * 60 * 1000,
      deadLetterRetentionMs: null,
      intervalMs: 60_000,
      batchSize: 1_000,
      enabled: true,
    });
  });

  it.each([
    [{ retentionMs: -1 }, 'retentionMs'],
    [{ deadLetterRetentionMs: '1d' }, 'deadLetterRetentionMs'],
    [{ intervalMs: 0 }, 'intervalMs'],
    [{ batchSize: 0 }, 'batchSize'],
    [{ batchSize: 1e6 }, 'batchSize'],
    [{ enabled: 'yes' }, 'enabled'],
    [{ retention: 5 }, 'retention'],
  ])('rejects %j naming %s', (options, option) => {
    expect(() => resolveRetentionOptions(options as never)).toThrow(InvalidOptionError);
    expect(() => resolveRetentionOptions(options as never)).toThrow(`"${option}"`);
  });
});

describe('resolveDeadLetterAdminOptions', () => {
  it('defaults and validates batchSize', () => {
    expect(resolveDeadLetterAdminOptions()).toEqual({ batchSize: 500 });
    expect(() => resolveDeadLetterAdminOptions({ batchSize: 0 })).toThrow(/"batchSize"/);
    expect(() => resolveDeadLetterAdminOptions({ batch: 5 } as never)).toThrow(/"batch"/);
  });
});
