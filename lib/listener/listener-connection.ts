import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { quoteChannel } from './channel-name.js';
import { ListenerTimeoutError } from './listener.errors.js';

export interface ListenerConnectionSettings {
  clientConfig: pg.ClientConfig;
  connectTimeoutMs: number;
  heartbeatIntervalMs: number;
  /** Bound on every query this connection sends; past it the connection is destroyed. */
  heartbeatTimeoutMs: number;
  onNotification(channel: string, payload: string): void;
  /** LISTEN registrations the heartbeat found missing (they are re-issued). */
  onChannelsMissing(channels: string[]): void;
  /** A LISTEN or UNLISTEN the server refused while the connection itself stayed healthy. */
  onCommandError(command: string, error: unknown): void;
}

/**
 * One LISTEN session: a dedicated `pg.Client` (never a pool checkout, whose session state would
 * be lost on release), its heartbeat, and its teardown. It is used once: when `lost` settles the
 * owner discards it and opens a new one.
 */
export class ListenerConnection {
  /** Settles once, with the first reason the connection stopped being usable. */
  readonly lost: Promise<Error>;
  /** The first reason recorded by `lost`, readable synchronously. */
  lostReason?: Error;
  backendPid?: number;

  private readonly client: pg.Client;
  private readonly ended: Promise<void>;
  private resolveLost!: (reason: Error) => void;
  /** Channels with a LISTEN sent and no UNLISTEN after it: what the server should report. */
  private readonly listening = new Set<string>();
  /**
   * Queries run one at a time, in the order they were asked for (a LISTEN then an UNLISTEN of
   * the same channel must reach the server in that order), and each one's timeout starts when it
   * is sent, not while it waits. Never rejects.
   */
  private queue: Promise<unknown> = Promise.resolve();
  private heartbeatTimer?: NodeJS.Timeout;
  private selfTestProbe?: { channel: string; token: string; received(): void };
  private connected = false;
  /** Set by `close()`, so a heartbeat answered during the goodbye does not schedule another. */
  private closing = false;

  constructor(private readonly settings: ListenerConnectionSettings) {
    this.lost = new Promise((resolve) => (this.resolveLost = resolve));
    this.client = new pg.Client(settings.clientConfig);
    // pg emits 'error' for a broken socket or a server-side termination (57P01…); without a
    // listener that would be an uncaught exception, so one stays attached for the client's life.
    this.client.on('error', (error) => this.fail(error));
    this.client.on('notification', ({ channel, payload }) => this.route(channel, payload ?? ''));
    this.ended = new Promise((resolve) =>
      this.client.once('end', () => {
        this.fail(new Error('Connection ended'));
        resolve();
      }),
    );
  }

  /** Connects and authenticates within `connectTimeoutMs`; rejects when that fails. */
  async open(): Promise<void> {
    const { connectTimeoutMs } = this.settings;
    const timer = setTimeout(
      () => this.fail(new ListenerTimeoutError('Connection attempt', connectTimeoutMs)),
      connectTimeoutMs,
    );
    try {
      await this.client.connect();
    } catch (error) {
      throw this.lostReason ?? error;
    } finally {
      clearTimeout(timer);
    }
    this.connected = true;
    const { rows } = await this.query<{ pid: number }>(
      'pg_backend_pid()',
      'SELECT pg_backend_pid() AS pid',
    );
    this.backendPid = rows[0]?.pid;
    this.scheduleHeartbeat();
  }

  /** Sends one LISTEN per channel, as a single round trip; resolves once the server ran them. */
  async listen(channels: readonly string[]): Promise<void> {
    if (channels.length === 0 || this.lostReason) return;
    for (const channel of channels) this.listening.add(channel);
    const text = channels.map((channel) => `LISTEN ${quoteChannel(channel)}`).join('; ');
    await this.command('LISTEN', text);
  }

  /** UNLISTENs one channel; failures are reported, never thrown. */
  async unlisten(channel: string): Promise<void> {
    if (this.lostReason) return;
    this.listening.delete(channel);
    await this.command('UNLISTEN', `UNLISTEN ${quoteChannel(channel)}`);
  }

  /** Resolves once every query queued so far has been answered (or the connection died). */
  settled(): Promise<void> {
    return this.queue.then(() => undefined);
  }

  /**
   * NOTIFYs a private channel on this very session and waits for the notification to come back.
   * A session receives its own notifications, so only a path that cannot deliver them (a
   * transaction-mode pooler, a filtering proxy) makes this fail. Rejects if the connection dies.
   */
  async verifyNotifications(): Promise<boolean> {
    const channel = `nestjs_pg_transport_selftest_${randomBytes(8).toString('hex')}`;
    const token = randomBytes(16).toString('hex');
    let timer: NodeJS.Timeout | undefined;
    const arrived = new Promise<boolean>((resolve) => {
      this.selfTestProbe = { channel, token, received: () => resolve(true) };
    });
    try {
      await this.query('self-test LISTEN', `LISTEN ${quoteChannel(channel)}`);
      await this.query('self-test NOTIFY', 'SELECT pg_notify($1, $2)', [channel, token]);
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), this.settings.heartbeatTimeoutMs);
      });
      const died = this.lost.then((reason) => Promise.reject(reason));
      const verified = await Promise.race([arrived, timedOut, died]);
      await this.query('self-test UNLISTEN', `UNLISTEN ${quoteChannel(channel)}`);
      return verified;
    } finally {
      clearTimeout(timer);
      this.selfTestProbe = undefined;
    }
  }

  /** Ends the session politely (UNLISTEN *, Terminate) when it is healthy, else destroys it. */
  async close(): Promise<void> {
    this.closing = true;
    this.stopHeartbeat();
    if (this.connected && !this.lostReason) {
      try {
        await this.query('UNLISTEN *', 'UNLISTEN *');
        await withTimeout(this.client.end(), this.settings.heartbeatTimeoutMs);
      } catch {
        // Falls through to destroy(): whatever failed, the socket must go.
      }
    }
    await this.destroy();
  }

  /**
   * Destroys the socket without a goodbye: on a blackholed connection `end()` would wait for an
   * answer that never comes. Resolves once the socket is closed.
   */
  async destroy(): Promise<void> {
    this.fail(new Error('Connection closed by the listener'));
    // Bounded, in case pg ever fails to emit 'end' for a socket that never opened.
    await withTimeout(this.ended, 1_000).catch(() => undefined);
  }

  /** Records the first reason, stops the heartbeat and drops the socket. Idempotent. */
  private fail(reason: Error): void {
    if (this.lostReason) return;
    this.lostReason = reason;
    this.stopHeartbeat();
    this.client.connection.stream.destroy();
    this.resolveLost(reason);
  }

  private route(channel: string, payload: string): void {
    const probe = this.selfTestProbe;
    if (probe && channel === probe.channel) {
      if (payload === probe.token) probe.received();
      return;
    }
    this.settings.onNotification(channel, payload);
  }

  /** A LISTEN/UNLISTEN: a dead connection is reported through `lost`, a refusal to the owner. */
  private async command(what: string, text: string): Promise<void> {
    try {
      await this.query(what, text);
    } catch (error) {
      if (!this.lostReason) this.settings.onCommandError(what, error);
    }
  }

  /** Queues a query behind the ones already asked for; see `queue`. */
  private query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    what: string,
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    const result = this.queue.then(() => this.send<R>(what, text, values));
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Sends a query that must be answered within `heartbeatTimeoutMs`. A query that is not is the
   * only symptom of a half-open TCP connection, so the connection is failed, which rejects it.
   */
  private async send<R extends pg.QueryResultRow>(
    what: string,
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    if (this.lostReason) throw this.lostReason;
    const { heartbeatTimeoutMs } = this.settings;
    const timer = setTimeout(
      () => this.fail(new ListenerTimeoutError(what, heartbeatTimeoutMs)),
      heartbeatTimeoutMs,
    );
    try {
      return await this.client.query<R>(text, values);
    } finally {
      clearTimeout(timer);
    }
  }

  // Scheduled after each answer rather than on an interval, so beats never pile up; a blackhole
  // is therefore detected at most heartbeatIntervalMs + heartbeatTimeoutMs after it starts.
  private scheduleHeartbeat(): void {
    if (this.lostReason || this.closing) return;
    this.heartbeatTimer = setTimeout(() => void this.beat(), this.settings.heartbeatIntervalMs);
  }

  private stopHeartbeat(): void {
    clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  private async beat(): Promise<void> {
    const expected = [...this.listening];
    let actual: Set<string>;
    try {
      const { rows } = await this.query<{ channel: string }>(
        'Heartbeat',
        'SELECT pg_listening_channels() AS channel',
      );
      actual = new Set(rows.map((row) => row.channel));
    } catch (error) {
      // A heartbeat the server answers with an error still means the session is unusable.
      this.fail(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    const missing = expected.filter(
      (channel) => !actual.has(channel) && this.listening.has(channel),
    );
    if (missing.length > 0) {
      this.settings.onChannelsMissing(missing);
      void this.listen(missing);
    }
    this.scheduleHeartbeat();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
