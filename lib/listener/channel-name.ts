import { quoteIdentifier } from '../sql/identifiers.js';
import { InvalidChannelNameError } from './listener.errors.js';

/** PostgreSQL identifiers are at most NAMEDATALEN - 1 bytes; longer ones are silently truncated. */
export const MAX_CHANNEL_NAME_BYTES = 63;

/**
 * Throws `InvalidChannelNameError` for a name PostgreSQL would reject or truncate. A truncated
 * LISTEN would register a different channel than the one NOTIFY targets, so it is refused outright.
 * Bytes are counted in UTF-8, the encoding of the client connection.
 */
export function assertChannelName(channel: string): void {
  if (typeof channel !== 'string' || channel.length === 0) {
    throw new InvalidChannelNameError(String(channel), 'expected a non-empty string');
  }
  if (channel.includes('\0')) {
    throw new InvalidChannelNameError(channel, 'PostgreSQL identifiers cannot contain NUL');
  }
  const bytes = Buffer.byteLength(channel, 'utf8');
  if (bytes > MAX_CHANNEL_NAME_BYTES) {
    throw new InvalidChannelNameError(
      channel,
      `it is ${bytes} bytes long; PostgreSQL truncates channel names to ${MAX_CHANNEL_NAME_BYTES} bytes. Use a shorter name.`,
    );
  }
}

/** Quotes a channel for LISTEN/UNLISTEN, which take an identifier and no bind parameters. */
export const quoteChannel: (channel: string) => string = quoteIdentifier;
