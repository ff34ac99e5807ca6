/** Scopes handlers to this transport: `@EventPattern('order.paid', POSTGRES_TRANSPORT)`. */
export const POSTGRES_TRANSPORT = Symbol('POSTGRES_TRANSPORT');

/** Injection token of the module's pg.Pool. */
export const POSTGRES_POOL = Symbol('POSTGRES_POOL');

/**
 * Nest's own reply when no handler serves a request pattern, so a `send` to an unknown pattern
 * fails the way it does on Nest's built-in transports.
 */
export const NO_MESSAGE_HANDLER =
  'There is no matching message handler defined in the remote service.';

/** Patterns are stored and sent in wake-up hints: keep them short enough for a NOTIFY. */
export const MAX_PATTERN_BYTES = 512;
