import { AsyncLocalStorage } from 'node:async_hooks';
import type { ActiveTransaction } from './active-transaction.js';

/**
 * The transaction code runs in, bound to its async context: a handler's consume transaction, an
 * interceptor's, or one `run` opened. Emits and `host.query` made anywhere below join it, and
 * concurrent requests never see each other's.
 */
const storage = new AsyncLocalStorage<ActiveTransaction>();

/** The transaction bound to the current async context, if any. */
export function currentTransaction(): ActiveTransaction | undefined {
  return storage.getStore();
}

/** Runs `fn` with `transaction` as the ambient transaction of everything it awaits or subscribes. */
export function runInTransaction<T>(transaction: ActiveTransaction, fn: () => T): T {
  return storage.run(transaction, fn);
}
