import { Logger } from '@nestjs/common';
import { Server, type CustomTransportStrategy } from '@nestjs/microservices';
import type pg from 'pg';
import { Subject, Subscription, type Observable } from 'rxjs';
import type { PostgresContext } from '../ctx-host/postgres.context.js';
import type { MessageCounters, MessageOutcome } from '../events/message-outcome.events.js';
import {
  PostgresStatus,
  type DeadLetterEvent,
  type PostgresServerEvents,
} from '../events/postgres.events.js';
import { acquireListener, type ListenerLease, type PostgresListener } from '../listener/index.js';
import { assertSchemaCurrent } from '../migrate/check-schema.js';
import { ensureMigrated } from '../migrate/ensure-migrated.js';
import {
  resolveServerOptions,
  type ResolvedServerOptions,
} from '../options/resolve-server-options.js';
import type { ServerPostgresOptions } from '../options/server-options.interface.js';
import { POSTGRES_TRANSPORT } from '../postgres.constants.js';
import {
  messageQueries,
  messageStatements,
  type MessageQueries,
  type MessageStatements,
} from '../sql/message.queries.js';
import { decodeHints, WakeupNotifier } from '../wakeup/wakeup-notifier.js';
import { BatchProcessor } from './batch-processor.js';
import { ConsumeConnections } from './consume-connections.js';
import { GroupConsumer } from './group-consumer.js';
import { MessageClaimer } from './message-claimer.js';
import { MessageDispatcher } from './message-dispatcher.js';
import { statusOf } from './status-of.js';

/**
 * A Nest microservice transport whose messages are rows of a PostgreSQL table. Each copy of a
 * message is claimed with FOR UPDATE SKIP LOCKED, handled inside the transaction that marks it
 * consumed, and retried with backoff or dead-lettered when its handler fails.
 */
export class ServerPostgres
  extends Server<PostgresServerEvents, PostgresStatus>
  implements CustomTransportStrategy
{
  override readonly transportId = POSTGRES_TRANSPORT;
  /** Event handler failures are awaited and retried here, so Nest need not log them too. */
  override readonly propagatesEventHandlerErrors = true;
  protected override readonly logger = new Logger(ServerPostgres.name);

  private readonly options: ResolvedServerOptions;
  private readonly queries: MessageQueries;
  private readonly statements: MessageStatements;
  private readonly notifier: WakeupNotifier;
  private readonly consumer: GroupConsumer;
  /** Connections the claims and batches have checked out, ended by a shutdown that times out. */
  private readonly connections: ConsumeConnections;
  private readonly listeners = new Map<
    keyof PostgresServerEvents,
    Set<(...args: never[]) => void>
  >();
  private readonly subscriptions = new Subscription();
  private readonly outcomes = new Subject<MessageOutcome>();
  private readonly totals: MessageCounters = {
    handled: 0,
    failed: 0,
    deadLettered: 0,
    redelivered: 0,
  };
  /**
   * What became of every message this server handled, after each commit: feed it to Prometheus
   * or OpenTelemetry (see the README). Completes when the server closes.
   */
  readonly outcomes$: Observable<MessageOutcome> = this.outcomes.asObservable();
  private lease: ListenerLease | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private retryTimer: { at: number; timer: NodeJS.Timeout } | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: ServerPostgresOptions) {
    super();
    this.options = resolveServerOptions(options);
    const { connection } = this.options;
    this.queries = messageQueries(connection.schema);
    this.statements = messageStatements(this.queries, connection.preparedStatements);
    this.notifier = new WakeupNotifier(connection);
    this.initializeSerializer(options);
    this.initializeDeserializer(options);
    const dispatcher = new MessageDispatcher({
      group: this.options.group,
      preparedStatements: connection.preparedStatements,
      getHandler: (pattern) => this.getHandlerByPattern(pattern),
      deserializer: this.deserializer,
      serializer: this.serializer,
      toObservable: (result) => this.transformToObservable(result),
      withProcessingHooks: (context, run) => this.withProcessingHooks(context, run),
    });
    const connections = (this.connections = new ConsumeConnections());
    const processor = new BatchProcessor({
      connections,
      statements: this.statements,
      group: this.options.group,
      target: connection.target,
      maxAttempts: this.options.maxAttempts,
      leaseMs: this.options.leaseMs,
      retryDelayMs: this.options.retryDelayMs,
      maxRetryDelayMs: this.options.maxRetryDelayMs,
      notifier: this.notifier,
      foldTransaction: connection.preparedStatements,
      handle: (message, transaction) => dispatcher.handle(message, transaction),
      onDeadLetter: (event) => this.emitEvent('deadLetter', event),
      onRetryScheduled: (delayMs) => this.wakeAfter(delayMs),
      onOutcome: (outcome) => this.record(outcome),
    });
    const claimer = new MessageClaimer(connection.pool, connections, this.statements, this.options);
    this.consumer = new GroupConsumer({
      group: this.options.group,
      concurrency: this.options.concurrency,
      batchSize: this.options.batchSize,
      claim: () => claimer.claim(),
      process: (batch) => processor.process(batch),
    });
  }

  /** Migrates (or, with migrations off, checks the schema is current), records the group's subscriptions, then starts consuming. */
  async listen(callback: (error?: unknown) => void): Promise<void> {
    try {
      const { connection } = this.options;
      if (connection.migrationsRun) await ensureMigrated(connection.pool(), connection.schemaName);
      else await assertSchemaCurrent(connection.pool(), connection.schemaName, connection.schema);
      await this.subscribe();
      this.lease = acquireListener(connection.listener);
      this.watch(this.lease.listener);
      this.sweepTimer = setInterval(() => this.consumer.wake(), this.options.sweepIntervalMs);
      this.sweepTimer.unref();
      this.consumer.wake();
      callback();
    } catch (error) {
      callback(error);
    }
  }

  /** Stops claiming, lets in-flight handlers finish within `shutdownTimeoutMs`, then disconnects. */
  close(): Promise<void> {
    return (this.closing ??= this.shutdown());
  }

  /** Registers a listener for `error`, `status` or `deadLetter`. */
  on<K extends keyof PostgresServerEvents>(event: K, callback: PostgresServerEvents[K]): void {
    let callbacks = this.listeners.get(event);
    if (!callbacks) this.listeners.set(event, (callbacks = new Set()));
    callbacks.add(callback);
  }

  /** The pg.Pool and the shared PostgresListener this server uses. */
  unwrap<T = { pool: pg.Pool; listener: PostgresListener | undefined }>(): T {
    return { pool: this.options.connection.pool(), listener: this.lease?.listener } as T;
  }

  /** Running totals since start: handled, failed, dead-lettered, redelivered. */
  get counters(): Readonly<MessageCounters> {
    return { ...this.totals };
  }

  /** Wakes the consumer now, as a NOTIFY would. Useful after writing rows by hand. */
  wake(): void {
    this.consumer.wake();
  }

  private async subscribe(): Promise<void> {
    const patterns = [...this.getHandlers().entries()].map(([pattern, handler]) => ({
      pattern,
      kind: handler.isEventHandler ? 'event' : 'request',
    }));
    if (patterns.length === 0) {
      this.logger.warn(
        `Group "${this.options.group}" has no handlers scoped to POSTGRES_TRANSPORT`,
      );
      return;
    }
    await this.options.connection
      .pool()
      .query(this.queries.upsertSubscriptions, [
        this.options.group,
        patterns.map((p) => p.pattern),
        patterns.map((p) => p.kind),
      ]);
  }

  private watch(listener: PostgresListener): void {
    const group = this.options.group;
    this.subscriptions.add(
      listener.notifications(this.options.connection.channel).subscribe((payload) => {
        if (decodeHints(payload).some((hint) => hint.recipient === group)) this.consumer.wake();
      }),
    );
    // After every (re)connect, one catch-up pass finds what was committed while not listening.
    this.subscriptions.add(listener.ready$.subscribe(() => this.consumer.wake()));
    this.subscriptions.add(
      listener.state$.subscribe((status) => {
        const next = statusOf(status.state);
        this._status$.next(next);
        this.emitEvent('status', next);
      }),
    );
  }

  /** Keeps one timer for the earliest scheduled retry, so retries do not wait for the sweep. */
  private wakeAfter(delayMs: number): void {
    const at = Date.now() + delayMs;
    if (this.closing || (this.retryTimer && this.retryTimer.at <= at)) return;
    if (this.retryTimer) clearTimeout(this.retryTimer.timer);
    const timer = setTimeout(() => {
      this.retryTimer = undefined;
      this.consumer.wake();
    }, delayMs + 5);
    timer.unref();
    this.retryTimer = { at, timer };
  }

  private record(outcome: MessageOutcome): void {
    this.totals[outcome.type]++;
    if (outcome.attempt > 1) this.totals.redelivered++;
    this.outcomes.next(outcome);
  }

  private withProcessingHooks(context: PostgresContext, run: () => Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.onProcessingStartHook(this.transportId, context, async () => {
        try {
          await run();
          resolve();
        } catch (error) {
          reject(error);
        } finally {
          this.onProcessingEndHook?.(this.transportId, context);
        }
      });
    });
  }

  private emitEvent<K extends keyof PostgresServerEvents>(
    event: K,
    ...args: Parameters<PostgresServerEvents[K]>
  ): void {
    for (const callback of this.listeners.get(event) ?? []) {
      try {
        (callback as (...a: unknown[]) => void)(...args);
      } catch (error) {
        this.logger.error(`A "${event}" listener threw: ${(error as Error).message}`);
      }
    }
  }

  private async shutdown(): Promise<void> {
    clearInterval(this.sweepTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer.timer);
    this.subscriptions.unsubscribe();
    const finished = await this.consumer.stop(this.options.shutdownTimeoutMs);
    if (!finished) {
      this.logger.warn(
        `In-flight handlers or claims did not finish within ${this.options.shutdownTimeoutMs} ` +
          'ms; their transactions are rolled back and their messages return after the lease',
      );
      this.connections.abort('ServerPostgres shut down');
    }
    await this.notifier.drain();
    await this.lease?.release();
    this.lease = undefined;
    if (this.options.connection.ownsPool) await this.options.connection.pool().end();
    this._status$.next(PostgresStatus.CLOSED);
    this.emitEvent('status', PostgresStatus.CLOSED);
    this.outcomes.complete();
  }
}

export type { DeadLetterEvent };
