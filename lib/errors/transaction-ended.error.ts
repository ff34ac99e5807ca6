import { PostgresTransportError } from './postgres-transport.error.js';

/**
 * A statement or an emit was made in a transaction after it had started to commit or had rolled
 * back: typically from a timer or a callback that a handler started and did not wait for. It
 * would otherwise run outside that transaction, on a connection already given back to the pool.
 */
export class TransactionEndedError extends PostgresTransportError {
  constructor(what: string) {
    super(
      `${what} was made in a transaction that had already ended (committed or rolled back), ` +
        'so it was not written. Await it inside the transaction (in the handler, or in the ' +
        'function given to host.run), or make it outside the transaction.',
    );
  }
}
