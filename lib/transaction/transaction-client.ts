import type pg from 'pg';

/** node-postgres's `query`, in any of its forms: a promise, a callback, or a submittable. */
export type RawQuery = (config: unknown, values?: unknown, callback?: unknown) => unknown;

/**
 * A transaction's connection whose `query` is `query`: everything else is node-postgres's own
 * client (its methods run on it, `instanceof` holds), so it can be handed to code that expects
 * one.
 */
export function transactionClient<C extends pg.ClientBase>(connection: C, query: RawQuery): C {
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(connection, {
    get(target, property) {
      if (property === 'query') return query;
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      // Bound once, so that a method read twice is the same function (as `off` needs).
      if (!bound.has(property)) bound.set(property, value.bind(target));
      return bound.get(property);
    },
  });
}
