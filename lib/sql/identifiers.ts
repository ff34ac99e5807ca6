import { InvalidOptionError } from '../errors/invalid-option.error.js';

/** PostgreSQL truncates identifiers past NAMEDATALEN - 1 bytes; refuse them instead. */
export const MAX_IDENTIFIER_BYTES = 63;

/**
 * Quotes an identifier for SQL text. The one place identifiers are quoted: every schema name goes
 * through here when options are resolved, and the query builders only ever see the quoted form.
 */
export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Validates a schema name from options and returns it quoted. */
export function quoteSchemaOption(option: string, name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new InvalidOptionError(option, 'expected a non-empty string, e.g. "nestjs_transport"');
  }
  if (Buffer.byteLength(name) > MAX_IDENTIFIER_BYTES - 5) {
    // The wake-up channel is "<schema>:wake", which must also fit in an identifier.
    throw new InvalidOptionError(option, `"${name}" is longer than 58 bytes`);
  }
  if (name.startsWith('pg_')) {
    throw new InvalidOptionError(option, 'PostgreSQL reserves schema names starting with "pg_"');
  }
  if (name.includes('\0')) {
    throw new InvalidOptionError(option, 'a schema name cannot contain a NUL character');
  }
  return quoteIdentifier(name);
}
