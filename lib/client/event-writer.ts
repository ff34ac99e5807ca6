import type pg from 'pg';
import type { MessageStatements } from '../sql/message.queries.js';
import type { WakeupNotifier } from '../wakeup/wakeup-notifier.js';
import type { OutgoingMessage } from './outgoing-message.js';

/**
 * An emit that starts at least this long after the previous one, with no statement in flight,
 * carries its own NOTIFY. That bounds the commits holding the notify lock to 100 per second per
 * client.
 */
const LONE_EMIT_GAP_MS = 10;

/** A shared statement stops taking emits past this many, or past this many payload characters. */
const MAX_EVENTS_PER_STATEMENT = 200;
const MAX_PAYLOAD_CHARS_PER_STATEMENT = 1024 * 1024;

interface PendingEmit {
  readonly message: OutgoingMessage;
  readonly resolve: (recipients: string[]) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Writes the events emitted outside any transaction, each committed on its own from the
 * caller's point of view. One statement is in flight at a time. The emits made meanwhile, and
 * all those made in the same turn of the event loop, go out together as one multi-row INSERT:
 * one round trip and one commit for all of them. Concurrent emitters tend to emit in bursts (a
 * commit answers several of them at once), so gathering a turn's emits before sending keeps a
 * burst in one statement instead of sending its first emit alone and queueing the rest; the
 * wait is one pass of the event loop. A shared statement that fails is retried emit by emit, so
 * one bad message fails alone.
 */
export class EventWriter {
  private readonly queue: PendingEmit[] = [];
  private inFlight = false;
  /** A send is scheduled for the end of this turn of the event loop. */
  private scheduled = false;
  private lastStatementStart = -Infinity;

  constructor(
    private readonly pool: () => pg.Pool,
    private readonly statements: MessageStatements,
    private readonly notifier: WakeupNotifier,
  ) {}

  /** Inserts the event for every subscribed group; resolves with the groups that got a row. */
  write(message: OutgoingMessage): Promise<string[]> {
    return new Promise<string[]>((resolve, reject) => {
      this.queue.push({ message, resolve, reject });
      this.scheduleSend();
    });
  }

  /** Sends the queued emits once this turn's emits have joined them, unless one is in flight. */
  private scheduleSend(): void {
    if (this.scheduled || this.inFlight || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.sendNext();
    });
  }

  private sendNext(): void {
    const batch = this.takeBatch();
    if (batch.length === 0) return;
    // Alone (nothing in flight, no hint waiting, none started in the last LONE_EMIT_GAP_MS),
    // nobody contends for the notify lock: the statement carries its own NOTIFY, and the
    // wake-up arrives with the commit instead of one round trip later.
    const now = performance.now();
    const alone = this.notifier.idle && now - this.lastStatementStart >= LONE_EMIT_GAP_MS;
    this.lastStatementStart = now;
    this.inFlight = true;
    const sent = batch.length === 1 ? this.writeOne(batch[0], alone) : this.writeMany(batch);
    void sent.finally(() => {
      this.inFlight = false;
      this.scheduleSend();
    });
  }

  private takeBatch(): PendingEmit[] {
    const batch: PendingEmit[] = [];
    let chars = 0;
    while (this.queue.length > 0 && batch.length < MAX_EVENTS_PER_STATEMENT) {
      const size = this.queue[0].message.payload.length;
      if (batch.length > 0 && chars + size > MAX_PAYLOAD_CHARS_PER_STATEMENT) break;
      batch.push(this.queue.shift()!);
      chars += size;
    }
    return batch;
  }

  /** Writes one emit; `notifyWithin` makes its statement send the NOTIFY itself. */
  private async writeOne(emit: PendingEmit, notifyWithin: boolean): Promise<void> {
    const { pattern, idempotencyKey, payload } = emit.message;
    const values = [pattern, idempotencyKey, payload];
    try {
      const { rows } = await this.pool().query<{ recipient: string }>(
        notifyWithin
          ? this.statements.insertEventAndNotify([...values, this.notifier.channel])
          : this.statements.insertEvent(values),
      );
      const recipients = rows.map(({ recipient }) => recipient);
      if (!notifyWithin && recipients.length > 0) {
        this.notifier.wake(recipients.map((recipient) => ({ recipient, pattern })));
      }
      emit.resolve(recipients);
    } catch (error) {
      emit.reject(error);
    }
  }

  private async writeMany(batch: PendingEmit[]): Promise<void> {
    let rows: Array<{ recipient: string; pattern: string; idempotency_key: string }>;
    try {
      ({ rows } = await this.pool().query(
        this.statements.insertEvents([
          batch.map((emit) => emit.message.pattern),
          batch.map((emit) => emit.message.idempotencyKey),
          batch.map((emit) => emit.message.payload),
        ]),
      ));
    } catch {
      // Whatever failed, each emit now gets its own statement and its own error. Should the
      // shared statement have committed before its connection broke, the retries find their
      // keys taken and insert nothing: nothing is written twice.
      await Promise.all(batch.map((emit) => this.writeOne(emit, false)));
      return;
    }
    this.notifier.wake(rows.map(({ recipient, pattern }) => ({ recipient, pattern })));
    // Rows are told apart by pattern and key. Two emits of one batch with the same pattern and
    // key inserted once: the first gets the groups, the second is the duplicate and gets none.
    const byEmit = new Map<string, string[]>();
    for (const row of rows) {
      const id = JSON.stringify([row.pattern, row.idempotency_key]);
      byEmit.set(id, [...(byEmit.get(id) ?? []), row.recipient]);
    }
    for (const emit of batch) {
      const id = JSON.stringify([emit.message.pattern, emit.message.idempotencyKey]);
      emit.resolve(byEmit.get(id) ?? []);
      byEmit.delete(id);
    }
  }
}
