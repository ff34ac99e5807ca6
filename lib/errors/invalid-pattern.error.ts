import { PostgresTransportError } from './postgres-transport.error.js';

/** A pattern that cannot be routed: empty, too long, or with characters that cannot be stored. */
export class InvalidPatternError extends PostgresTransportError {}
