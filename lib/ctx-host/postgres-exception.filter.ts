import { Catch, type ArgumentsHost } from '@nestjs/common';
import { BaseRpcExceptionFilter, RpcException } from '@nestjs/microservices';
import { throwError, type Observable } from 'rxjs';
import { PostgresContext } from './postgres.context.js';

/**
 * Keeps the message of an error thrown by an event handler. Nest's default RPC filter replaces
 * any error that is not an RpcException with "Internal server error", which is then all a dead
 * letter would say. For events, which have no caller to hide details from, this filter passes
 * the error's name and message on; requests keep Nest's default. Register it on the
 * microservice: `app.useGlobalFilters(new PostgresExceptionFilter())`.
 */
@Catch()
export class PostgresExceptionFilter extends BaseRpcExceptionFilter {
  override catch(exception: unknown, host: ArgumentsHost): Observable<any> {
    const context = host.getType() === 'rpc' ? host.switchToRpc().getContext() : undefined;
    if (
      context instanceof PostgresContext &&
      context.getMessage().kind === 'event' &&
      exception instanceof Error &&
      !(exception instanceof RpcException)
    ) {
      return throwError(() => ({
        status: 'error',
        name: exception.name,
        message: exception.message,
      }));
    }
    return super.catch(exception, host);
  }
}
