import type {
  ConsumerDeserializer,
  ConsumerSerializer,
  MessageHandler,
} from '@nestjs/microservices';
import { NO_MESSAGE_HANDLER } from '../postgres.constants.js';
import { isObservable, lastValueFrom, type Observable } from 'rxjs';
import { PostgresContext } from '../ctx-host/postgres.context.js';
import type { ActiveTransaction } from '../transaction/active-transaction.js';
import type { ClaimedMessage, HandleResult } from './claimed-message.js';
import { describeError } from './describe-error.js';

export interface MessageDispatcherDeps {
  readonly group: string;
  /** Whether `PostgresContext.query` prepares repeated texts (the connection option). */
  readonly preparedStatements: boolean;
  readonly getHandler: (pattern: string) => MessageHandler | null;
  readonly deserializer: ConsumerDeserializer;
  readonly serializer: ConsumerSerializer;
  readonly toObservable: (result: unknown) => Observable<unknown>;
  /** Nest's processing hooks (used by instrumentation), around each handler call. */
  readonly withProcessingHooks: (
    context: PostgresContext,
    run: () => Promise<void>,
  ) => Promise<void>;
}

/**
 * Turns a claimed row into a call of the user's Nest handler, and the handler's outcome into a
 * HandleResult. Event handlers that throw are retried; a request's error is its reply.
 */
export class MessageDispatcher {
  /**
   * Handlers by pattern. Nest's lookup tries JSON.parse on every pattern, which throws for plain
   * strings; handlers are all registered before listen(), so each pattern is looked up once.
   */
  private readonly handlers = new Map<string, MessageHandler | null>();

  constructor(private readonly deps: MessageDispatcherDeps) {}

  async handle(message: ClaimedMessage, transaction: ActiveTransaction): Promise<HandleResult> {
    if (message.kind === 'request' && message.expired) {
      return { outcome: 'consumed', rollback: false, error: 'expired: the sender stopped waiting' };
    }
    let packet: { data?: unknown; pattern?: unknown };
    try {
      packet = await this.deps.deserializer.deserialize(message.payload, {
        channel: message.pattern,
      });
    } catch (error) {
      return this.unusable(message, `payload cannot be deserialized: ${describeError(error)}`);
    }
    if (!packet || typeof packet !== 'object' || !('data' in packet)) {
      return this.unusable(message, 'payload is not a packet with a "data" field');
    }
    let handler = this.handlers.get(message.pattern);
    if (handler === undefined) {
      handler = this.deps.getHandler(message.pattern);
      this.handlers.set(message.pattern, handler);
    }
    const wrongKind = handler && (handler.isEventHandler ?? false) !== (message.kind === 'event');
    if (!handler || wrongKind) {
      return message.kind === 'event'
        ? {
            outcome: 'dead',
            rollback: false,
            error: `no event handler for "${message.pattern}" in group "${this.deps.group}"`,
          }
        : this.reply([{ err: NO_MESSAGE_HANDLER, isDisposed: true }], false);
    }
    const context = new PostgresContext(
      [
        {
          id: message.id,
          pattern: message.pattern,
          kind: message.kind,
          attempt: message.attempts,
          group: this.deps.group,
          idempotencyKey: message.idempotency_key,
          createdAt: message.created_at,
          // Read when used: taking the connection queues a deferred BEGIN ahead of it.
          get client() {
            return transaction.client;
          },
        },
      ],
      this.deps.preparedStatements,
      transaction,
    );
    return message.kind === 'event'
      ? this.runEvent(handler, packet.data, context)
      : this.runRequest(handler, packet.data, context);
  }

  private async runEvent(
    handler: MessageHandler,
    data: unknown,
    context: PostgresContext,
  ): Promise<HandleResult> {
    try {
      await this.deps.withProcessingHooks(context, async () => {
        const result = await handler(data, context);
        await lastValueFrom(this.deps.toObservable(result), { defaultValue: undefined });
      });
      return { outcome: 'consumed', rollback: false };
    } catch (error) {
      return { outcome: 'failed', rollback: true, error: describeError(error) };
    }
  }

  private async runRequest(
    handler: MessageHandler,
    data: unknown,
    context: PostgresContext,
  ): Promise<HandleResult> {
    const packets: Array<{ response?: unknown; err?: unknown; isDisposed?: boolean }> = [];
    try {
      await this.deps.withProcessingHooks(context, async () => {
        const result = await handler(data, context);
        const stream = isObservable(result) ? result : this.deps.toObservable(result);
        await new Promise<void>((resolve, reject) =>
          stream.subscribe({
            // isDisposed: false keeps an undefined response a packet after JSON drops the field.
            next: (response) => packets.push({ response, isDisposed: false }),
            error: reject,
            complete: resolve,
          }),
        );
      });
      packets.push({ isDisposed: true });
      return this.reply(packets, false);
    } catch (error) {
      // The caller receives the error, and the handler's writes are undone.
      return this.reply([{ err: serializableError(error), isDisposed: true }], true);
    }
  }

  private reply(
    packets: Array<{ response?: unknown; err?: unknown; isDisposed?: boolean }>,
    rollback: boolean,
  ): HandleResult {
    const reply = packets.map((packet) => this.deps.serializer.serialize(packet as never));
    const error = rollback ? describeError(packets[0]?.err) : undefined;
    return { outcome: 'consumed', rollback, reply, error };
  }

  private unusable(message: ClaimedMessage, error: string): HandleResult {
    // A request still gets an answer, so its sender does not wait for a timeout.
    return message.kind === 'request'
      ? {
          ...this.reply([{ err: { status: 'error', message: error }, isDisposed: true }], false),
          error,
        }
      : { outcome: 'dead', rollback: false, error };
  }
}

/** Errors thrown past Nest's filters may be Error instances, which JSON would turn into `{}`. */
function serializableError(error: unknown): unknown {
  return error instanceof Error
    ? { status: 'error', message: error.message, name: error.name }
    : error;
}
