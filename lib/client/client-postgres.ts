import { Logger } from '@nestjs/common';
import { ClientProxy, type ReadPacket, type WritePacket } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { from, Subscription, throwError, type Observable } from 'rxjs';
import { PostgresStatus, type PostgresClientEvents } from '../events/postgres.events.js';
import { acquireListener, type ListenerLease } from '../listener/index.js';
import { ensureMigrated } from '../migrate/ensure-migrated.js';
import type { ClientPostgresOptions } from '../options/client-options.interface.js';
import {
  resolveClientOptions,
  type ResolvedClientOptions,
} from '../options/resolve-client-options.js';
import { ClientClosingError } from '../errors/client-closing.error.js';
import { TransactionEndedError } from '../errors/transaction-ended.error.js';
import { NO_MESSAGE_HANDLER } from '../postgres.constants.js';
import { statusOf } from '../server/status-of.js';
import {
  messageQueries,
  messageStatements,
  type MessageQueries,
  type MessageStatements,
} from '../sql/message.queries.js';
import { ActiveTransaction } from '../transaction/active-transaction.js';
import { currentTransaction } from '../transaction/ambient-transaction.js';
import { targetOfClient } from '../transaction/client-target.js';
import { InFlight } from '../transaction/in-flight.js';
import { WakeupNotifier } from '../wakeup/wakeup-notifier.js';
import { EventWriter } from './event-writer.js';
import { writeEventInTransaction } from './transaction-event-write.js';
import { UnsubscribedPatterns } from './unsubscribed-patterns.js';
import { encodeOutgoing, type OutgoingMessage } from './outgoing-message.js';
import { ReplyInbox } from './reply-inbox.js';

/**
 * Result of one emit: the groups that got a new row. Empty when the key was already used, or
 * when no group subscribes to the pattern (the client then logs a warning once per pattern).
 */
export interface EmitResult {
  readonly recipients: string[];
}

/**
 * A Nest ClientProxy that writes messages as rows. `emit` inserts one row per subscribed group,
 * idempotently, inside the ambient transaction when there is one; `send` inserts a request for
 * the serving group and waits for the reply row in this client's inbox.
 */
// Status is typed `string` (values are PostgresStatus) so a ClientPostgres stays assignable to
// ClientProxy, the type users inject clients as.
export class ClientPostgres extends ClientProxy<PostgresClientEvents, string> {
  protected readonly logger = new Logger(ClientPostgres.name);
  private readonly options: ResolvedClientOptions;
  private readonly queries: MessageQueries;
  private readonly statements: MessageStatements;
  private readonly notifier: WakeupNotifier;
  private readonly inbox: ReplyInbox;
  private readonly writer: EventWriter;
  private readonly subscriptions = new Subscription();
  private readonly unsubscribed: UnsubscribedPatterns;
  private connection: Promise<void> | undefined;
  private lease: ListenerLease | undefined;
  /** Emits made and not yet settled; close() waits for them. */
  private readonly emitsInFlight = new InFlight();
  private closing = false;

  constructor(options: ClientPostgresOptions) {
    super();
    this.options = resolveClientOptions(options);
    const { connection } = this.options;
    this.queries = messageQueries(connection.schema);
    this.statements = messageStatements(this.queries, connection.preparedStatements);
    this.notifier = new WakeupNotifier(connection);
    this.writer = new EventWriter(connection.pool, this.statements, this.notifier);
    this.unsubscribed = new UnsubscribedPatterns(connection.pool, this.statements, this.logger);
    this.inbox = new ReplyInbox({
      address: `reply:${randomUUID()}`,
      pool: connection.pool,
      statements: this.statements,
      pollIntervalMs: this.options.replyPollIntervalMs,
      deserialize: (packet) => this.deserializer.deserialize(packet),
    });
    this.initializeSerializer(options);
    this.initializeDeserializer(options);
  }

  /** Migrates (unless turned off). Idempotent. The first `send` starts listening for replies. */
  connect(): Promise<void> {
    this.connection ??= this.open().catch((error) => {
      this.connection = undefined;
      throw error;
    });
    return this.connection;
  }

  /**
   * Fails pending requests, waits for emits already made, stops listening and ends the pool if
   * the client created it.
   */
  async close(): Promise<void> {
    this.closing = true;
    this.subscriptions.unsubscribe();
    await this.inbox.close();
    // Emits already made are written (and their wake-ups sent) before the pool closes.
    await this.emitsInFlight.settled();
    await this.notifier.drain();
    await this.lease?.release();
    this.lease = undefined;
    if (this.connection && this.options.connection.ownsPool) {
      await this.options.connection.pool().end();
    }
    this.connection = undefined;
    this.closing = false;
    this._status$.next(PostgresStatus.CLOSED);
  }

  /**
   * Nest's emit, without its Observable plumbing: the write starts at once (the Observable is
   * hot, as Nest's is) and every subscriber, early or late, gets its result. Tracked so that
   * close() waits for it. An emit made while the client closes fails at once: its pool is about
   * to end, and a query queued on an ending pool never runs.
   */
  override emit<TResult = any, TInput = any>(pattern: any, data: TInput): Observable<TResult> {
    // Nest's own checks and error for a missing pattern or payload.
    if (pattern == null || data == null) return super.emit<TResult, TInput>(pattern, data);
    if (this.closing) {
      return throwError(() => new ClientClosingError(pattern));
    }
    const packet = this.createPacket(pattern, data);
    // The transaction is the caller's, taken now and told about the write at once: a handler
    // that does not await its emit may return, and its transaction commit, before the write
    // starts (the first emit waits for the client to connect).
    const transaction = this.joinableTransaction();
    if (transaction && !transaction.isOpen) {
      const error = new TransactionEndedError(
        `The emit of ${JSON.stringify(this.normalizePattern(pattern))}`,
      );
      // Made from a timer or callback nobody awaits: its Observable is likely unobserved.
      this.logger.error(error.message);
      return throwError(() => error);
    }
    const write = transaction
      ? this.writeEventIn<TResult>(transaction, packet)
      : this.connect().then(() => this.writeEventAlone<TResult>(packet));
    // Tracking also marks the promise handled: an emit nobody subscribes to must not crash the
    // process. close() waits for it to settle either way.
    this.emitsInFlight.track(write.then(ignore, ignore));
    return from(write);
  }

  /** The pg.Pool this client writes through. */
  unwrap<T = pg.Pool>(): T {
    return this.options.connection.pool() as T;
  }

  /**
   * Emits and resolves with what was written; the Observable returned by `emit` resolves with
   * the same value. Use this from code that prefers a Promise.
   */
  protected dispatchEvent<T = EmitResult>(packet: ReadPacket): Promise<T> {
    const transaction = this.joinableTransaction();
    return transaction
      ? this.writeEventIn<T>(transaction, packet)
      : this.writeEventAlone<T>(packet);
  }

  /** Writes the event in `transaction`, which waits for the write before it commits. */
  private async writeEventIn<T>(transaction: ActiveTransaction, packet: ReadPacket): Promise<T> {
    const pattern = this.normalizePattern(packet.pattern);
    const statement = this.connect().then(() => {
      const message = this.encode(pattern, packet);
      return this.statements.insertEvent([
        message.pattern,
        message.idempotencyKey,
        message.payload,
      ]);
    });
    const recipients = await writeEventInTransaction(
      transaction,
      statement,
      pattern,
      this.notifier,
    );
    return this.emitted<T>(pattern, recipients);
  }

  /** Writes the event committed on its own, sharing a statement with concurrent emits. */
  private async writeEventAlone<T>(packet: ReadPacket): Promise<T> {
    const pattern = this.normalizePattern(packet.pattern);
    return this.emitted<T>(pattern, await this.writer.write(this.encode(pattern, packet)));
  }

  private encode(pattern: string, packet: ReadPacket): OutgoingMessage {
    return encodeOutgoing(
      pattern,
      packet,
      (p) => this.serializer.serialize(p),
      this.options.maxPayloadBytes,
    );
  }

  /** What an emit resolves with; warns when no group subscribes to its pattern. */
  private async emitted<T>(pattern: string, recipients: string[]): Promise<T> {
    if (recipients.length === 0) await this.unsubscribed.check(pattern);
    const result: EmitResult = { recipients };
    return result as T;
  }

  /**
   * The SQL of an emit, for a transaction the library cannot join: run `text` with `values` inside
   * it (Prisma: `tx.$executeRawUnsafe(text, ...values)`; MikroORM: `em.execute(text, values)`).
   * It inserts one row per subscribed group and wakes them when that transaction commits.
   */
  emitStatement(pattern: unknown, data: unknown): { text: string; values: string[] } {
    const normalized = this.normalizePattern(pattern as string);
    const message = this.encode(normalized, this.createPacket(pattern, data));
    return {
      text: this.queries.insertEventAndNotify,
      values: [
        message.pattern,
        message.idempotencyKey,
        message.payload,
        this.options.connection.channel,
      ],
    };
  }

  protected publish(packet: ReadPacket, callback: (packet: WritePacket) => void): () => void {
    const withId = this.assignPacketId(packet);
    const pattern = this.normalizePattern(packet.pattern);
    let message;
    try {
      message = this.encode(pattern, withId);
    } catch (error) {
      callback({ err: error, isDisposed: true });
      return () => undefined;
    }
    const id = withId.id;
    this.listenForReplies();
    this.inbox.expect(id, pattern, this.options.replyTimeoutMs, callback);
    // A request always commits on its own: its reply can only come after the commit.
    this.options.connection
      .pool()
      .query<{ recipient: string }>(
        this.statements.insertRequest([
          pattern,
          id,
          message.payload,
          this.inbox.address,
          this.options.replyTimeoutMs,
        ]),
      )
      .then(({ rows }) => {
        if (rows.length === 0) {
          this.inbox.resolve(id, { err: NO_MESSAGE_HANDLER, isDisposed: true });
        } else {
          this.notifier.wake(rows.map(({ recipient }) => ({ recipient, pattern })));
        }
      })
      .catch((error: unknown) => this.inbox.resolve(id, { err: error, isDisposed: true }));
    return () => this.inbox.forget(id);
  }

  private async open(): Promise<void> {
    const { connection } = this.options;
    if (connection.migrationsRun) await ensureMigrated(connection.pool(), connection.schemaName);
    // Emits need no LISTEN connection, so until the first request the client is connected once
    // its schema is ready; see listenForReplies.
    if (!this.lease) this._status$.next(PostgresStatus.CONNECTED);
  }

  /**
   * Starts listening for this client's replies, at its first request. A client that only emits
   * then LISTENs on nothing and receives none of the wake-ups sent on the channel, which carries
   * every group's. From then on the client's status follows the shared LISTEN
   * connection. A reply that lands before the LISTEN is answered is read once it is (the inbox
   * drains on every ready), or by the inbox's poll.
   */
  private listenForReplies(): void {
    if (this.lease) return;
    const { connection } = this.options;
    this.lease = acquireListener(connection.listener);
    const { listener } = this.lease;
    this.subscriptions.add(this.inbox.listen(listener, connection.channel));
    this.subscriptions.add(
      listener.state$.subscribe((status) => this._status$.next(statusOf(status.state))),
    );
  }

  /**
   * The transaction an emit joins: the ambient one (a handler's consume transaction, an
   * interceptor's, or one handed over with `runWith`) if it is on this client's database, else
   * one that `externalTransaction` reports.
   */
  private joinableTransaction(): ActiveTransaction | undefined {
    const ambient = currentTransaction();
    if (ambient && ambient.target === this.options.connection.target) return ambient;
    const external = this.options.externalTransaction?.();
    return external ? new ActiveTransaction(external, targetOfClient(external), false) : undefined;
  }
}

function ignore(): void {}
