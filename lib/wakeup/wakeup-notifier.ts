import { Logger } from '@nestjs/common';
import type pg from 'pg';
import type { ResolvedConnection } from '../options/resolve-connection.js';
import { statement, type Statement } from '../sql/statement.js';

/** A hint that `recipient` has a new row for `pattern`. Hints carry no message body. */
export interface WakeupHint {
  readonly recipient: string;
  readonly pattern: string;
}

/** NOTIFY payloads must stay under 8000 bytes; leave room for the framing. */
const MAX_PAYLOAD_BYTES = 7_000;

/** Sends each payload on the channel, within the caller's transaction. */
const NOTIFY_HINTS_WITHIN = 'SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload';

/** Sends each payload on the channel, in a transaction whose commit does not wait for the flush. */
const NOTIFY_HINTS = `${NOTIFY_HINTS_WITHIN},
  (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit`;

/**
 * The one seam through which wake-ups leave the process. Writers hand it hints after their
 * transaction commits; it coalesces all hints gathered while a NOTIFY is in flight into the next
 * one. A NOTIFY inside a writer's transaction would take PostgreSQL's global notify lock at that
 * commit and serialise every concurrent publisher; here it is a separate, tiny transaction whose
 * commit does not wait for the WAL flush (a lost hint costs latency, never a message: consumers
 * also sweep and re-query after reconnecting).
 */
export class WakeupNotifier {
  private readonly logger = new Logger('PostgresWakeup');
  private pending = new Map<string, Set<string>>();
  private flushing: Promise<void> | undefined;
  /** When the last NOTIFY of a flush was sent (performance.now()). */
  private lastSentAt = -Infinity;
  private readonly intervalMs: number;

  /** The NOTIFY of a flush, prepared unless the connection options turn that off. */
  private readonly notify: Statement;

  private readonly pool: () => pg.Pool;
  /** The channel the hints go out on. */
  readonly channel: string;

  constructor(
    connection: Pick<
      ResolvedConnection,
      'pool' | 'channel' | 'preparedStatements' | 'wakeupIntervalMs'
    >,
  ) {
    this.pool = connection.pool;
    this.channel = connection.channel;
    this.intervalMs = connection.wakeupIntervalMs;
    this.notify = statement(NOTIFY_HINTS, connection.preparedStatements);
  }

  /** Queues hints for the next NOTIFY. Never throws and never waits. */
  wake(hints: Iterable<WakeupHint>): void {
    addHints(this.pending, hints);
    if (this.pending.size > 0) this.flushing ??= this.flush();
  }

  /** Whether no hint is waiting for, or travelling in, a NOTIFY of this notifier. */
  get idle(): boolean {
    return this.flushing === undefined;
  }

  /**
   * Sends hints now, inside the caller's transaction: PostgreSQL delivers them on commit and
   * drops them on rollback. Used only for transactions the library does not commit itself;
   * it costs that commit the global notify lock.
   */
  async wakeWithin(client: pg.ClientBase, hints: Iterable<WakeupHint>): Promise<void> {
    const pending = addHints(new Map(), hints);
    if (pending.size === 0) return;
    await client.query(NOTIFY_HINTS_WITHIN, [this.channel, encodeHints(pending)]);
  }

  /** Resolves once every queued hint has been sent (or failed to). */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private async flush(): Promise<void> {
    try {
      // Let the writers that finish in this same tick join the NOTIFY.
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (this.pending.size > 0) {
        // With wakeupIntervalMs, hints arriving sooner wait and go out together.
        const wait = this.lastSentAt + this.intervalMs - performance.now();
        if (wait > 0) await new Promise<void>((resolve) => setTimeout(resolve, wait));
        this.lastSentAt = performance.now();
        const batch = this.pending;
        this.pending = new Map();
        await this.send(encodeHints(batch));
      }
    } finally {
      this.flushing = undefined;
    }
  }

  private async send(payloads: string[]): Promise<void> {
    try {
      await this.pool().query(this.notify([this.channel, payloads]));
    } catch (error) {
      // The rows are committed; consumers find them on their next sweep.
      this.logger.warn(`Could not send a wake-up: ${(error as Error).message}`);
    }
  }
}

/** Adds hints to `into`, a set of patterns per recipient, and returns it. */
function addHints(
  into: Map<string, Set<string>>,
  hints: Iterable<WakeupHint>,
): Map<string, Set<string>> {
  for (const { recipient, pattern } of hints) {
    let patterns = into.get(recipient);
    if (!patterns) into.set(recipient, (patterns = new Set()));
    patterns.add(pattern);
  }
  return into;
}

/** Encodes hints as JSON arrays of [recipient, pattern] pairs, each payload under the limit. */
export function encodeHints(hints: Map<string, Set<string>>): string[] {
  const payloads: string[] = [];
  let pairs: string[] = [];
  let bytes = 2;
  for (const [recipient, patterns] of hints) {
    for (const pattern of patterns) {
      const pair = JSON.stringify([recipient, pattern]);
      const size = Buffer.byteLength(pair) + 1;
      if (pairs.length > 0 && bytes + size > MAX_PAYLOAD_BYTES) {
        payloads.push(`[${pairs.join(',')}]`);
        pairs = [];
        bytes = 2;
      }
      pairs.push(pair);
      bytes += size;
    }
  }
  if (pairs.length > 0) payloads.push(`[${pairs.join(',')}]`);
  return payloads;
}

/** Decodes a NOTIFY payload into hints; anything malformed yields none (a hint is only a hint). */
export function decodeHints(payload: string): WakeupHint[] {
  try {
    const pairs: unknown = JSON.parse(payload);
    if (!Array.isArray(pairs)) return [];
    return pairs
      .filter(
        (pair): pair is [string, string] =>
          Array.isArray(pair) && typeof pair[0] === 'string' && typeof pair[1] === 'string',
      )
      .map(([recipient, pattern]) => ({ recipient, pattern }));
  } catch {
    return [];
  }
}
