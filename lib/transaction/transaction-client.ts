import type pg from 'pg';
import { whenAnswered } from './answered.js';
import type { StatementLane } from './statement-lane.js';
import { TransactionEndedError } from '../errors/transaction-ended.error.js';

/**
 * A transaction's connection as handed to code that sends its own queries on it (an ORM, a
 * query builder): node-postgres's own client (its methods run on it, `instanceof` holds), whose
 * `query`, in any of node-postgres's forms, takes its turn in the transaction's `lane` and is
 * refused once `ended()` says the transaction has ended, when the connection may already serve
 * another. Its `release`, if it has one, does nothing.
 */
export function transactionClient<C extends pg.ClientBase>(
  connection: C,
  lane: StatementLane,
  ended: () => boolean,
): C {
  const query = (config: unknown, values?: unknown, callback?: unknown): unknown => {
    if (typeof values === 'function') return query(config, undefined, values);
    if (isSubmittable(config)) {
      if (ended()) throw new TransactionEndedError('A query');
      // A cursor or a stream answers over several round trips, until it is done.
      void lane.send(() => {
        void connection.query(config);
        return whenAnswered(connection);
      });
      return config;
    }
    const result = ended()
      ? Promise.reject(new TransactionEndedError('A query'))
      : lane.send(() => connection.query(config as never, values as never));
    if (typeof callback !== 'function') return result;
    result.then(
      (rows) => callback(undefined, rows),
      (error: Error) => callback(error),
    );
    return undefined;
  };
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(connection, {
    get(target, property) {
      if (property === 'query') return query;
      // The transaction returns its connection to the pool when it ends. Code written for pool
      // clients (a query builder's driver) releases what it took; released mid-transaction, the
      // connection would serve another checkout with this transaction still open on it.
      if (property === 'release' && typeof target[property as keyof C] === 'function') {
        return keepConnection;
      }
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      // Bound once, so that a method read twice is the same function (as `off` needs).
      if (!bound.has(property)) bound.set(property, value.bind(target));
      return bound.get(property);
    },
  });
}

/** `release` of a handed-out connection: the transaction releases it when it ends. */
function keepConnection(): void {}

function isSubmittable(config: unknown): config is pg.Submittable {
  return typeof (config as { submit?: unknown } | null)?.submit === 'function';
}
