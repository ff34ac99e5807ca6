import { describe, expect, it } from '@jest/globals';
import { assertChannelName, quoteChannel } from '../../../lib/listener/channel-name.js';
import { InvalidChannelNameError } from '../../../lib/listener/listener.errors.js';

describe('channel names', () => {
  it('quotes identifiers, doubling embedded quotes', () => {
    expect(quoteChannel('orders')).toBe('"orders"');
    expect(quoteChannel('"; DROP TABLE x; --')).toBe('"""; DROP TABLE x; --"');
    expect(quoteChannel('a "b" c')).toBe('"a ""b"" c"');
  });

  it('accepts up to 63 UTF-8 bytes and refuses more', () => {
    expect(() => assertChannelName('x'.repeat(63))).not.toThrow();
    expect(() => assertChannelName('é'.repeat(31) + 'x')).not.toThrow();
    expect(() => assertChannelName('x'.repeat(64))).toThrow(InvalidChannelNameError);
    expect(() => assertChannelName('🚀'.repeat(16))).toThrow(/64 bytes/);
  });

  it('refuses empty names and NUL', () => {
    expect(() => assertChannelName('')).toThrow(InvalidChannelNameError);
    expect(() => assertChannelName('a\0b')).toThrow(/NUL/);
  });
});
