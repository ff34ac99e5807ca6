import { randomUUID } from 'node:crypto';
import { InvalidPatternError } from '../errors/invalid-pattern.error.js';
import { PayloadError, PayloadTooLargeError } from '../errors/payload.error.js';
import { MAX_PATTERN_BYTES } from '../postgres.constants.js';
import { PostgresRecord } from './postgres.record.js';

export interface OutgoingMessage {
  readonly pattern: string;
  readonly idempotencyKey: string;
  /** The serialized packet as JSON text, checked against the size limit. */
  readonly payload: string;
}

const MAX_KEY_LENGTH = 512;

/**
 * Validates and encodes one outgoing message before anything is written: the pattern, the
 * idempotency key, and the serialized packet (JSON-encodable and within the size limit).
 */
export function encodeOutgoing(
  pattern: string,
  packet: { data?: unknown },
  serialize: (packet: any) => unknown,
  maxPayloadBytes: number,
): OutgoingMessage {
  checkPattern(pattern);
  let data = packet.data;
  let idempotencyKey: string = randomUUID();
  if (data instanceof PostgresRecord) {
    const key = data.options.idempotencyKey;
    if (key !== undefined) {
      if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH) {
        throw new PayloadError(
          `idempotencyKey must be a string of 1 to ${MAX_KEY_LENGTH} characters`,
        );
      }
      idempotencyKey = key;
    }
    data = data.data;
  }
  let payload: string | undefined;
  try {
    payload = JSON.stringify(serialize({ ...packet, data }));
  } catch (error) {
    throw new PayloadError(
      `Payload for "${pattern}" cannot be serialized as JSON: ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (payload === undefined) {
    throw new PayloadError(
      `Payload for "${pattern}" serialized to nothing (a function or symbol?)`,
    );
  }
  const bytes = Buffer.byteLength(payload);
  if (bytes > maxPayloadBytes) throw new PayloadTooLargeError(bytes, maxPayloadBytes);
  return { pattern, idempotencyKey, payload };
}

function checkPattern(pattern: string): void {
  if (pattern.length === 0) throw new InvalidPatternError('A pattern cannot be empty');
  if (Buffer.byteLength(pattern) > MAX_PATTERN_BYTES) {
    throw new InvalidPatternError(`Pattern is longer than ${MAX_PATTERN_BYTES} bytes`);
  }
  if (pattern.includes('\0'))
    throw new InvalidPatternError('A pattern cannot contain NUL characters');
}
