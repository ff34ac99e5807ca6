import { PostgresTransportError } from './postgres-transport.error.js';

/** Migrations could not be applied, or the database is ahead of this library. */
export class MigrationError extends PostgresTransportError {}
