import {
  Injectable,
  UseInterceptors,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { Observable, type Subscription } from 'rxjs';
import { PostgresTransportError } from '../errors/postgres-transport.error.js';
import { currentTransaction, runInTransaction } from './ambient-transaction.js';
import { PoolTransaction } from './pool-transaction.js';
import { PostgresTransactionHost } from './postgres-transaction-host.js';

/** Nest's metadata key of `@Sse()` handlers (a stable, public decorator's key). */
const SSE_METADATA = '__sse__';

/**
 * Runs an HTTP route or a message handler in one transaction. The handler's writes through
 * `PostgresTransactionHost` and every `emit` it makes commit together when its Observable
 * completes, and roll back together when it errors; the error then goes on, unchanged, to
 * Nest's exception filters. The handler's values are held until the commit succeeded, so a
 * response is never sent for work that did not commit.
 *
 * Inside an ambient transaction (a ServerPostgres handler's consume transaction, or an outer
 * interceptor) it joins that transaction.
 */
@Injectable()
export class PostgresTransactionInterceptor implements NestInterceptor {
  constructor(private readonly host: PostgresTransactionHost) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (currentTransaction()) return next.handle();
    if (Reflect.getMetadata(SSE_METADATA, context.getHandler())) {
      throw new PostgresTransportError(
        `${context.getClass().name}.${context.getHandler().name} streams (Server-Sent Events): ` +
          `a transaction cannot stay open for a stream's lifetime. Open one per unit of work ` +
          `with PostgresTransactionHost.run() inside the stream instead.`,
      );
    }
    return new Observable((subscriber) => {
      let transaction: PoolTransaction | undefined;
      let inner: Subscription | undefined;
      let settled = false;
      this.host
        .begin()
        .then((opened) => {
          transaction = opened;
          if (subscriber.closed) return void opened.rollback();
          const values: unknown[] = [];
          inner = runInTransaction(opened, () => next.handle()).subscribe({
            next: (value) => values.push(value),
            error: (error: unknown) => {
              settled = true;
              void opened.rollback().finally(() => subscriber.error(error));
            },
            complete: () => {
              settled = true;
              opened.commit().then(
                () => {
                  for (const value of values) subscriber.next(value);
                  subscriber.complete();
                },
                (error: unknown) => subscriber.error(error),
              );
            },
          });
        })
        .catch((error: unknown) => subscriber.error(error));
      return () => {
        inner?.unsubscribe();
        // Torn down before the handler finished (e.g. the client went away): undo its work.
        if (transaction && !settled) void transaction.rollback();
      };
    });
  }
}

/** Shortcut for `@UseInterceptors(PostgresTransactionInterceptor)`. */
export const Transactional = () => UseInterceptors(PostgresTransactionInterceptor);
