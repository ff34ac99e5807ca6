import { Logger } from '@nestjs/common';
import type { WritePacket } from '@nestjs/microservices';
import type pg from 'pg';
import { Subscription } from 'rxjs';
import { PostgresTransportError } from '../errors/postgres-transport.error.js';
import { ReplyTimeoutError } from '../errors/reply-timeout.error.js';
import type { PostgresListener } from '../listener/index.js';
import type { MessageStatements } from '../sql/message.queries.js';
import { decodeHints } from '../wakeup/wakeup-notifier.js';

export interface ReplyInboxDeps {
  /** The recipient name replies to this client are addressed to. */
  readonly address: string;
  readonly pool: () => pg.Pool;
  readonly statements: MessageStatements;
  readonly pollIntervalMs: number;
  readonly deserialize: (packet: unknown) => WritePacket | Promise<WritePacket>;
}

interface PendingRequest {
  readonly pattern: string;
  readonly callback: (packet: WritePacket) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * A client's reply inbox: reply rows addressed to it are taken (deleted) as they arrive and
 * routed to the waiting `send` by correlation id. Woken by NOTIFY hints; while requests are
 * pending it also checks on a slow timer, so a lost hint delays a reply but never loses it.
 */
export class ReplyInbox {
  private readonly logger = new Logger('ClientPostgres');
  private readonly pending = new Map<string, PendingRequest>();
  private draining: Promise<void> | undefined;
  private drainAgain = false;
  private poll: NodeJS.Timeout | undefined;

  constructor(private readonly deps: ReplyInboxDeps) {}

  get address(): string {
    return this.deps.address;
  }

  /** Wakes on hints for this inbox and checks once after every (re)connect. */
  listen(listener: PostgresListener, channel: string): Subscription {
    const subscription = new Subscription();
    subscription.add(
      listener.notifications(channel).subscribe((payload) => {
        // Every hint on the channel arrives here; only a pending request makes one worth reading.
        if (this.pending.size === 0) return;
        if (decodeHints(payload).some((hint) => hint.recipient === this.deps.address)) this.drain();
      }),
    );
    subscription.add(listener.ready$.subscribe(() => this.pending.size > 0 && this.drain()));
    return subscription;
  }

  /** Waits for the reply to request `id`; fails it with ReplyTimeoutError after `timeoutMs`. */
  expect(
    id: string,
    pattern: string,
    timeoutMs: number,
    callback: (packet: WritePacket) => void,
  ): void {
    const timer = setTimeout(
      () => this.resolve(id, { err: new ReplyTimeoutError(pattern, timeoutMs), isDisposed: true }),
      timeoutMs,
    );
    this.pending.set(id, { pattern, callback, timer });
    this.poll ??= setInterval(() => this.drain(), this.deps.pollIntervalMs);
  }

  /** Delivers a packet to request `id`; the last packet of a reply ends the wait. */
  resolve(id: string, packet: WritePacket): void {
    const request = this.pending.get(id);
    if (!request) return;
    if (packet.isDisposed || packet.err) this.forget(id);
    request.callback(packet);
  }

  /** Stops waiting for request `id` (timed out, answered, or unsubscribed). */
  forget(id: string): void {
    const request = this.pending.get(id);
    if (!request) return;
    clearTimeout(request.timer);
    this.pending.delete(id);
    if (this.pending.size === 0 && this.poll) {
      clearInterval(this.poll);
      this.poll = undefined;
    }
  }

  /** Fails every pending request and removes replies nobody will read. */
  async close(): Promise<void> {
    for (const id of [...this.pending.keys()]) {
      this.resolve(id, {
        err: new PostgresTransportError('ClientPostgres was closed before the reply arrived'),
        isDisposed: true,
      });
    }
    await this.draining;
  }

  /** Takes every reply waiting in the inbox. Concurrent calls coalesce into one more pass. */
  drain(): void {
    if (this.draining) {
      this.drainAgain = true;
      return;
    }
    this.draining = this.takeReplies().finally(() => {
      this.draining = undefined;
      if (this.drainAgain) {
        this.drainAgain = false;
        this.drain();
      }
    });
  }

  private async takeReplies(): Promise<void> {
    let rows: Array<{ correlation_id: string; payload: unknown }>;
    try {
      ({ rows } = await this.deps
        .pool()
        .query(this.deps.statements.takeReplies([this.deps.address])));
    } catch (error) {
      this.logger.warn(`Could not read replies: ${(error as Error).message}`);
      return;
    }
    for (const row of rows) {
      const packets = Array.isArray(row.payload) ? row.payload : [row.payload];
      for (const packet of packets) {
        this.resolve(row.correlation_id, await this.deps.deserialize(packet));
      }
    }
  }
}
