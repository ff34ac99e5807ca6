import { describe, expect, it } from '@jest/globals';
import { decodeHints, encodeHints } from '../../../lib/wakeup/wakeup-notifier.js';

describe('wake-up hints', () => {
  it('round-trip recipients and patterns, including hostile text', () => {
    const hints = new Map([
      ['billing', new Set(['order.paid', `x"]; DROP --`])],
      ['reply:1', new Set(['quote'])],
    ]);
    const [payload] = encodeHints(hints);
    expect(decodeHints(payload)).toEqual([
      { recipient: 'billing', pattern: 'order.paid' },
      { recipient: 'billing', pattern: `x"]; DROP --` },
      { recipient: 'reply:1', pattern: 'quote' },
    ]);
  });

  it('split into payloads under the NOTIFY limit, losing none', () => {
    const patterns = new Set(
      Array.from({ length: 400 }, (_, i) => `pattern.${i}.${'p'.repeat(40)}`),
    );
    const payloads = encodeHints(new Map([['group', patterns]]));
    expect(payloads.length).toBeGreaterThan(1);
    for (const payload of payloads) expect(Buffer.byteLength(payload)).toBeLessThan(8_000);
    expect(payloads.flatMap(decodeHints)).toHaveLength(400);
  });

  it('decode malformed payloads to nothing', () => {
    expect(decodeHints('not json')).toEqual([]);
    expect(decodeHints('{"a":1}')).toEqual([]);
    expect(decodeHints('[[1,2],["ok","p"]]')).toEqual([{ recipient: 'ok', pattern: 'p' }]);
  });
});
