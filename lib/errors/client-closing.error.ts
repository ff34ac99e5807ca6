import { PostgresTransportError } from './postgres-transport.error.js';

/** An emit was made while its ClientPostgres was closing; nothing was written. */
export class ClientClosingError extends PostgresTransportError {
  constructor(readonly pattern: unknown) {
    super(
      `Emit of ${JSON.stringify(pattern)} refused: the ClientPostgres is closing, so nothing was ` +
        'written. Emit before calling close(), or after connect() on a client that is not closing.',
    );
  }
}
