import type { ListenerStatusError } from './listener.events.js';

/**
 * SQLSTATEs that retrying cannot fix until an operator acts. The listener still retries them
 * (at the slowest pace) so a corrected password or a created database heals without a restart,
 * but reports them as `fatal` and logs them at error level.
 */
export const FATAL_CONNECTION_SQLSTATES: ReadonlySet<string> = new Set([
  '28P01', // invalid_password
  '28000', // invalid_authorization_specification (e.g. no pg_hba.conf entry, role cannot log in)
  '3D000', // invalid_catalog_name: the database does not exist
]);

/**
 * Codes expected while a server restarts, fails over or is briefly overloaded. Classification
 * does not need this list (everything not fatal is retried with backoff); it documents them.
 */
export const TRANSIENT_CONNECTION_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  '53300', // too_many_connections
  '57P01', // admin_shutdown (also pg_terminate_backend)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down, recovery)
  '08000', // connection_exception
  '08001', // sqlclient_unable_to_establish_sqlconnection
  '08006', // connection_failure
]);

/**
 * Turns whatever a connection attempt threw into the shape `state$` reports, classified by its
 * `code` (SQLSTATE or Node errno), never by message text, and with every secret scrubbed.
 */
export function classifyConnectionError(
  error: unknown,
  secrets: readonly string[],
): ListenerStatusError {
  const code = codeOf(error);
  const raw = error instanceof Error ? error.message : String(error);
  return {
    message: redact(raw || 'connection failed', secrets),
    ...(code === undefined ? {} : { code }),
    fatal: code !== undefined && FATAL_CONNECTION_SQLSTATES.has(code),
  };
}

function codeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code } = error as { code?: unknown };
  return typeof code === 'string' && code.length > 0 ? code : undefined;
}

function redact(message: string, secrets: readonly string[]): string {
  let text = message;
  // Longest first, so a connection string is replaced whole before its password part.
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    text = text.replaceAll(secret, '***');
  }
  return text;
}
