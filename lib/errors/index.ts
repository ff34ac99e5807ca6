export { PostgresTransportError } from './postgres-transport.error.js';
export { InvalidOptionError } from './invalid-option.error.js';
export { PayloadError, PayloadTooLargeError } from './payload.error.js';
export { InvalidPatternError } from './invalid-pattern.error.js';
export { ReplyTimeoutError } from './reply-timeout.error.js';
export { ClientClosingError } from './client-closing.error.js';
export { MigrationError } from './migration.error.js';
export { TransactionAbortedError } from './transaction-aborted.error.js';
export { SqlState, sqlStateOf } from './sqlstate.js';
