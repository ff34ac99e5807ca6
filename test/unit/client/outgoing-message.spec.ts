import { describe, expect, it } from '@jest/globals';
import { encodeOutgoing } from '../../../lib/client/outgoing-message.js';
import { PostgresRecord, PostgresRecordBuilder } from '../../../lib/client/postgres.record.js';
import {
  InvalidPatternError,
  PayloadError,
  PayloadTooLargeError,
} from '../../../lib/errors/index.js';

const identity = (packet: unknown) => packet;

describe('encodeOutgoing', () => {
  it('serializes the packet and generates a key per message', () => {
    const a = encodeOutgoing('p', { data: { n: 1 } }, identity, 1_000);
    const b = encodeOutgoing('p', { data: { n: 1 } }, identity, 1_000);
    expect(JSON.parse(a.payload)).toEqual({ data: { n: 1 } });
    expect(a.idempotencyKey).not.toBe(b.idempotencyKey);
  });

  it('takes the key from a PostgresRecord and unwraps its data', () => {
    const record = new PostgresRecordBuilder({ n: 2 }).setIdempotencyKey('order-7').build();
    const message = encodeOutgoing('p', { data: record }, identity, 1_000);
    expect(message.idempotencyKey).toBe('order-7');
    expect(JSON.parse(message.payload)).toEqual({ data: { n: 2 } });
  });

  it('refuses what cannot be stored', () => {
    expect(() => encodeOutgoing('p', { data: { n: 1n } }, identity, 1_000)).toThrow(PayloadError);
    expect(() => encodeOutgoing('p', { data: 'x'.repeat(2_000) }, identity, 1_000)).toThrow(
      PayloadTooLargeError,
    );
    expect(() => encodeOutgoing('', { data: 1 }, identity, 1_000)).toThrow(InvalidPatternError);
    expect(() =>
      encodeOutgoing('p', { data: new PostgresRecord(1, { idempotencyKey: '' }) }, identity, 1_000),
    ).toThrow(/idempotencyKey/);
    expect(() => encodeOutgoing('p', { data: 1 }, () => undefined, 1_000)).toThrow(
      /serialized to nothing/,
    );
  });
});
