import { BehaviorSubject, defer, Observable, of, Subject } from 'rxjs';
import { Backoff } from './backoff.js';
import { assertChannelName } from './channel-name.js';
import { ChannelHub } from './channel-hub.js';
import { classifyConnectionError } from './connection-errors.js';
import { ListenerConnection } from './listener-connection.js';
import { ListenerClosedError } from './listener.errors.js';
import {
  channelsMissingMessage,
  commandFailedMessage,
  selfTestFailedMessage,
  statusLogEntry,
  type LogLevel,
} from './listener.messages.js';
import { ListenerState, type ListenerReadyEvent, type ListenerStatus } from './listener.events.js';
import {
  resolveListenerOptions,
  type PostgresListenerOptions,
  type ResolvedListenerOptions,
} from './listener-options.js';

const LOG_CONTEXT = 'PostgresListener';

/**
 * The one LISTEN connection of a process (per server), shared by every consumer through RxJS.
 *
 * PostgreSQL delivers a notification once per listening session, so a session per consumer would
 * multiply connections and work; one session fanned out in-process costs one connection whatever
 * the number of subscribers. Notifications are only wake-up hints: after every (re)connect,
 * `ready$` tells consumers to catch up with one query, which covers anything sent while the
 * session was down.
 */
export class PostgresListener {
  /** The current status, replayed to each new subscriber, then every change. */
  readonly state$: Observable<ListenerStatus>;
  /**
   * Emits once all channels are LISTENed on a new connection: `{ reconnect: false }` for the
   * first, `{ reconnect: true }` after each reconnect. A subscriber arriving while connected gets
   * one emission for the current connection as soon as the LISTENs sent before it are answered,
   * so "subscribe to `notifications()`, then run one catch-up query per `ready$`" never misses.
   */
  readonly ready$: Observable<ListenerReadyEvent>;

  private readonly options: ResolvedListenerOptions;
  private readonly status$: BehaviorSubject<ListenerStatus>;
  private readonly readySubject = new Subject<ListenerReadyEvent>();
  private readonly hub = new ChannelHub();
  private readonly backoff: Backoff;
  /** The connection being opened or in use; `live` once it accepts LISTEN/UNLISTEN. */
  private current?: ListenerConnection;
  private live?: ListenerConnection;
  private lastReady?: ListenerReadyEvent;
  private started?: Promise<void>;
  private markStarted?: () => void;
  private loop?: Promise<void>;
  /** Set synchronously by `close()`; every step of the loop checks it. */
  private stopping = false;
  private closing?: Promise<void>;
  private wake?: () => void;

  /** Validates `options` (throws `InvalidListenerOptionError`); does not connect yet. */
  constructor(options: PostgresListenerOptions) {
    this.options = resolveListenerOptions(options);
    this.backoff = new Backoff(this.options.reconnect, this.options.random);
    this.status$ = new BehaviorSubject<ListenerStatus>({
      state: ListenerState.Connecting,
      since: new Date(),
    });
    // Once closed, the subject is complete; late subscribers still get the final status.
    this.state$ = defer(() =>
      this.status.state === ListenerState.Closed ? of(this.status) : this.status$,
    );
    this.ready$ = new Observable<ListenerReadyEvent>((subscriber) => {
      const subscription = this.readySubject.subscribe(subscriber);
      const live = this.live;
      const last = this.lastReady;
      if (live && last && this.status.state === ListenerState.Connected) {
        void live.settled().then(() => {
          if (!subscriber.closed && this.live === live) subscriber.next(last);
        });
      }
      return subscription;
    });
  }

  /** The current status. */
  get status(): ListenerStatus {
    return this.status$.getValue();
  }

  /** Backend pid of the connected session, or undefined while not connected. */
  get backendPid(): number | undefined {
    return this.live?.backendPid;
  }

  /** Connection target as `user@host:port/database` (no password), as used in logs. */
  get target(): string {
    return this.options.target;
  }

  /**
   * Payloads NOTIFYed on `channel`. Hot and ref-counted: the first subscriber in the process
   * causes LISTEN, the last one leaving causes UNLISTEN; all share the one connection. Throws
   * `InvalidChannelNameError` at once for a name PostgreSQL would truncate. Completes on `close()`.
   */
  notifications(channel: string): Observable<string> {
    assertChannelName(channel);
    return new Observable<string>((subscriber) => {
      if (this.stopping) {
        subscriber.complete();
        return;
      }
      const { subject, first } = this.hub.attach(channel);
      const subscription = subject.subscribe(subscriber);
      // While disconnected there is nothing to send: the reconnect LISTENs every channel.
      if (first) void this.live?.listen([channel]);
      return () => {
        subscription.unsubscribe();
        if (this.hub.detach(channel)) void this.live?.unlisten(channel);
      };
    });
  }

  /**
   * Starts connecting (idempotent). Resolves once first connected, or when closed before that.
   * Connection failures never reject: they are reported on `state$` and retried. Rejects with
   * `ListenerClosedError` only when called after `close()`.
   */
  start(): Promise<void> {
    if (this.stopping) return Promise.reject(new ListenerClosedError());
    if (!this.started) {
      this.started = new Promise((resolve) => (this.markStarted = resolve));
      this.logStatus(this.status, this.status);
      this.loop = this.run().catch((error: unknown) => {
        // run() handles every failure itself; reaching this is a bug, but never a crash.
        this.log('error', `Listener loop stopped unexpectedly: ${String(error)}`);
      });
    }
    return this.started;
  }

  /**
   * UNLISTENs everything, ends the connection, cancels any pending reconnect and completes every
   * stream. Leaves no socket or timer behind. Idempotent.
   */
  close(): Promise<void> {
    if (!this.closing) {
      this.stopping = true;
      this.closing = this.shutdown();
    }
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const connection = this.current;
    this.live = undefined;
    this.wake?.();
    await connection?.close();
    await this.loop;
    this.setStatus({ state: ListenerState.Closed, since: new Date() });
    this.hub.completeAll();
    this.readySubject.complete();
    this.status$.complete();
    this.markStarted?.();
  }

  /** One connection per iteration: open, re-LISTEN, serve until lost, back off, repeat. */
  private async run(): Promise<void> {
    let connectedBefore = false;
    while (!this.stopping) {
      const connection = this.createConnection();
      this.current = connection;
      let connectedAt: number | undefined;
      let reason: unknown;
      try {
        await connection.open();
        this.throwIfClosing();
        // From here subscribe/unsubscribe talk to this connection directly, so a channel added
        // while the batch below is in flight is LISTENed too (LISTEN is idempotent).
        this.live = connection;
        await connection.listen(this.hub.channels());
        const verified = this.options.selfTest ? await connection.verifyNotifications() : undefined;
        await connection.settled();
        if (connection.lostReason) throw connection.lostReason;
        this.throwIfClosing();
        connectedAt = Date.now();
        this.setStatus({
          state: ListenerState.Connected,
          since: new Date(),
          ...(verified === undefined ? {} : { notificationsVerified: verified }),
        });
        if (verified === false) {
          const { target, heartbeatTimeoutMs } = this.options;
          this.log('error', selfTestFailedMessage(target, heartbeatTimeoutMs));
        }
        this.lastReady = { reconnect: connectedBefore };
        connectedBefore = true;
        this.markStarted?.();
        this.readySubject.next(this.lastReady);
        reason = await connection.lost;
      } catch (error) {
        reason = connection.lostReason ?? error;
      }
      if (this.live === connection) this.live = undefined;
      await connection.destroy();
      if (this.stopping) break;
      if (
        connectedAt !== undefined &&
        Date.now() - connectedAt >= this.options.reconnect.stableAfterMs
      ) {
        this.backoff.reset();
      }
      this.scheduleRetry(reason);
      await this.sleep(this.status.nextDelayMs ?? 0);
    }
  }

  private throwIfClosing(): void {
    if (this.stopping) throw new ListenerClosedError();
  }

  private createConnection(): ListenerConnection {
    const { clientConfig, connectTimeoutMs, heartbeatIntervalMs, heartbeatTimeoutMs } =
      this.options;
    return new ListenerConnection({
      clientConfig,
      connectTimeoutMs,
      heartbeatIntervalMs,
      heartbeatTimeoutMs,
      onNotification: (channel, payload) => this.hub.dispatch(channel, payload),
      onChannelsMissing: (channels) => this.log('warn', channelsMissingMessage(channels.length)),
      onCommandError: (command, error) => {
        const reason = classifyConnectionError(error, this.options.secrets).message;
        this.log('error', commandFailedMessage(command, reason));
      },
    });
  }

  private scheduleRetry(reason: unknown): void {
    const error = classifyConnectionError(reason, this.options.secrets);
    const { attempt, delayMs } = this.backoff.next(error.fatal);
    const previous = this.status;
    this.setStatus({
      state: ListenerState.Reconnecting,
      since: previous.state === ListenerState.Reconnecting ? previous.since : new Date(),
      attempt,
      nextDelayMs: delayMs,
      error,
    });
  }

  /** Waits `ms`, or less if `close()` is called meanwhile. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }

  private setStatus(status: ListenerStatus): void {
    const previous = this.status;
    this.status$.next(status);
    this.logStatus(status, previous);
  }

  private logStatus(status: ListenerStatus, previous: ListenerStatus): void {
    const entry = statusLogEntry(status, previous, {
      target: this.options.target,
      backendPid: this.backendPid,
      channels: this.hub.channels().length,
    });
    if (entry) this.log(entry.level, entry.message);
  }

  private log(level: LogLevel, message: string): void {
    this.options.logger[level](message, LOG_CONTEXT);
  }
}
