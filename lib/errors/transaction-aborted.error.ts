import { PostgresTransportError } from './postgres-transport.error.js';

/**
 * A transaction's work finished without an error, but a statement inside it had failed (its
 * error was caught), so PostgreSQL answered COMMIT by rolling back.
 */
export class TransactionAbortedError extends PostgresTransportError {
  constructor() {
    super(
      'The transaction was rolled back instead of committed: a statement inside it failed and ' +
        'its error was caught, which leaves a PostgreSQL transaction aborted. Nothing it wrote ' +
        'or emitted was kept. Let the error propagate, or wrap the statement that may fail in ' +
        'a SAVEPOINT and roll back to it.',
    );
  }
}
