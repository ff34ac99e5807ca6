import net from 'node:net';

export interface TcpProxyOptions {
  /** The server to forward to. */
  target: { host?: string; port: number };
  /**
   * Drop every NotificationResponse ('A') the server sends, as a pooler in transaction mode
   * effectively does. Assumes no SSL, so the server's first bytes are already typed messages.
   */
  dropNotifications?: boolean;
  /**
   * After each ErrorResponse ('E') the server sends, hold the rest of its stream (the
   * ReadyForQuery first) for this many ms, so that the client reads them apart, as it can on a
   * busy machine. Same assumption about SSL.
   */
  holdAfterErrorMs?: number;
}

interface Pair {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
}

/**
 * A TCP proxy on 127.0.0.1 for fault tests: it can cut every connection, blackhole them (the
 * sockets stay open and nothing moves, like a half-open connection), refuse new connections,
 * and filter PostgreSQL notifications out of the server's stream.
 */
export class TcpProxy {
  /** NotificationResponse messages dropped so far (with `dropNotifications`). */
  droppedNotifications = 0;
  /** Connections accepted and forwarded since the proxy started. */
  acceptedConnections = 0;

  private readonly pairs = new Set<Pair>();
  private blackholed = false;
  private refusing = false;

  private constructor(
    private readonly server: net.Server,
    private readonly options: TcpProxyOptions,
  ) {
    server.on('connection', (client) => this.accept(client));
  }

  /** Starts a proxy on a free port of 127.0.0.1. */
  static async start(options: TcpProxyOptions): Promise<TcpProxy> {
    const server = net.createServer();
    const proxy = new TcpProxy(server, options);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Connections currently open through the proxy. */
  get connectionCount(): number {
    return this.pairs.size;
  }

  /** `url` with its host and port replaced by the proxy's. */
  urlFor(url: string): string {
    const parsed = new URL(url);
    parsed.hostname = '127.0.0.1';
    parsed.port = String(this.port);
    return parsed.toString();
  }

  /** Resets every current connection on both sides (the client sees ECONNRESET). */
  cutAll(): void {
    for (const pair of [...this.pairs]) this.teardown(pair, true);
  }

  /**
   * Stops moving bytes in both directions, for current and new connections, without closing
   * anything. Bytes are held, not dropped (reading is paused), so `heal()` resumes the streams
   * intact like a healed network; closes are not seen either until then.
   */
  blackhole(): void {
    this.blackholed = true;
    for (const { client, upstream } of this.pairs) {
      client.pause();
      upstream.pause();
    }
  }

  /** Ends a blackhole: held bytes flow again. */
  heal(): void {
    this.blackholed = false;
    for (const { client, upstream } of this.pairs) {
      client.resume();
      upstream.resume();
    }
  }

  /** While on, new connections are accepted and immediately reset (ECONNRESET). */
  refuseNewConnections(refuse = true): void {
    this.refusing = refuse;
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    if (this.refusing) {
      client.on('error', () => undefined);
      client.resetAndDestroy();
      return;
    }
    this.acceptedConnections += 1;
    const { host = '127.0.0.1', port } = this.options.target;
    const upstream = net.connect(port, host);
    const pair: Pair = { client, upstream };
    this.pairs.add(pair);

    const toClient = this.options.dropNotifications
      ? this.notificationFilter()
      : (chunk: Buffer) => chunk;
    const send =
      this.options.holdAfterErrorMs !== undefined
        ? this.errorPacer(client, this.options.holdAfterErrorMs)
        : (chunk: Buffer) => client.write(chunk);
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => {
      const forwarded = toClient(chunk);
      if (forwarded.length > 0) send(forwarded);
    });
    for (const socket of [client, upstream]) {
      socket.on('error', () => this.teardown(pair, false));
      socket.on('end', () => this.teardown(pair, false));
      socket.on('close', () => this.teardown(pair, false));
    }
    if (this.blackholed) {
      client.pause();
      upstream.pause();
    }
  }

  private teardown(pair: Pair, reset: boolean): void {
    if (!this.pairs.delete(pair)) return;
    for (const socket of [pair.client, pair.upstream]) {
      if (reset && !socket.connecting && !socket.destroyed) socket.resetAndDestroy();
      else socket.destroy();
    }
  }

  /** Drops the NotificationResponse messages of the server's stream. */
  private notificationFilter(): (chunk: Buffer) => Buffer {
    const split = messageSplitter();
    return (chunk) => {
      const kept = split(chunk).filter((message) => {
        if (message[0] !== 0x41) return true;
        this.droppedNotifications += 1;
        return false;
      });
      return Buffer.concat(kept);
    };
  }

  /** Writes the server's stream to `client`, pausing it for `holdMs` after every ErrorResponse. */
  private errorPacer(client: net.Socket, holdMs: number): (chunk: Buffer) => void {
    const split = messageSplitter();
    const held: Buffer[] = [];
    let holding = false;
    const write = (message: Buffer) => {
      if (holding) {
        held.push(message);
        return;
      }
      client.write(message);
      if (message[0] !== 0x45) return;
      holding = true;
      setTimeout(() => {
        holding = false;
        for (const next of held.splice(0)) write(next);
      }, holdMs);
    };
    return (chunk) => split(chunk).forEach(write);
  }
}

/**
 * Splits a server's stream into backend messages (type byte + int32 length that counts itself),
 * keeping any partial message for the next chunk.
 */
function messageSplitter(): (chunk: Buffer) => Buffer[] {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    const messages: Buffer[] = [];
    let offset = 0;
    while (pending.length - offset >= 5) {
      const size = 1 + pending.readInt32BE(offset + 1);
      if (pending.length - offset < size) break;
      messages.push(pending.subarray(offset, offset + size));
      offset += size;
    }
    pending = pending.subarray(offset);
    return messages;
  };
}
