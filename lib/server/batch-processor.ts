import { Logger } from '@nestjs/common';
import type pg from 'pg';
import type { MessageOutcome } from '../events/message-outcome.events.js';
import type { DeadLetterEvent } from '../events/postgres.events.js';
import { BEGIN_BATCH, MESSAGE_SAVEPOINT, type MessageStatements } from '../sql/message.queries.js';
import { ActiveTransaction, runInTransaction } from '../transaction/active-transaction.js';
import type { WakeupNotifier } from '../wakeup/wakeup-notifier.js';
import type { ClaimedMessage, HandleResult } from './claimed-message.js';
import { retryDelay } from './retry-delay.js';

export interface BatchProcessorDeps {
  readonly pool: () => pg.Pool;
  readonly statements: MessageStatements;
  readonly group: string;
  readonly target: string;
  readonly maxAttempts: number;
  /** The claim's lease: when a rolled-back batch's messages become claimable again. */
  readonly leaseMs: number;
  readonly retryDelayMs: number;
  readonly maxRetryDelayMs: number;
  readonly notifier: WakeupNotifier;
  /** Runs the handler of one message; called inside the message's savepoint. */
  readonly handle: (
    message: ClaimedMessage,
    transaction: ActiveTransaction,
  ) => Promise<HandleResult>;
  readonly onDeadLetter: (event: DeadLetterEvent) => void;
  /** Told of every retry, so the owner can wake the group when the first one is due. */
  readonly onRetryScheduled: (delayMs: number) => void;
  /** Told what became of each message, after the commit. */
  readonly onOutcome: (outcome: MessageOutcome) => void;
}

interface Settlement {
  id: string;
  outcome: 'consumed' | 'retry' | 'dead';
  delayMs: number;
  error: string | null;
  durationMs: number;
}

const SAVEPOINT = MESSAGE_SAVEPOINT;

/** Keeps what the last message wrote and opens a savepoint for the next one. */
const NEXT_SAVEPOINT = `RELEASE SAVEPOINT ${SAVEPOINT}; SAVEPOINT ${SAVEPOINT}`;

const OUTCOME_TYPES = { consumed: 'handled', retry: 'failed', dead: 'deadLettered' } as const;

/**
 * Handles a claimed batch in ONE transaction: each message inside its own savepoint, so a failing
 * handler undoes only its own writes, and the whole batch is marked consumed by a single commit.
 * A crash anywhere rolls back everything; the claims' leases then expire and the rows return.
 */
export class BatchProcessor {
  private readonly logger = new Logger('ServerPostgres');
  /** Connections of the batches in flight, so a shutdown past its timeout can cut them. */
  private readonly active = new Set<pg.PoolClient>();

  constructor(private readonly deps: BatchProcessorDeps) {}

  /**
   * Ends the connections of batches still in flight. Their transactions roll back on the server,
   * so their messages come back after the lease; the handlers' next queries fail.
   */
  abort(): void {
    for (const client of this.active) client.release(new Error('ServerPostgres shut down'));
    this.active.clear();
  }

  async process(batch: readonly ClaimedMessage[]): Promise<void> {
    let broken: Error | undefined;
    const client = await this.deps.pool().connect();
    // A checked-out client whose connection dies emits 'error'; unhandled, that would end the
    // process. The failing query rejects as well, and the batch rolls back through it.
    const onError = (error: Error) => (broken ??= error);
    client.on('error', onError);
    this.active.add(client);
    const transaction = new ActiveTransaction(client, this.deps.target);
    try {
      await client.query(BEGIN_BATCH);
      const settlements: Settlement[] = [];
      const replies: Array<{ recipient: string; pattern: string }> = [];
      for (const message of batch) {
        const started = performance.now();
        const result = await this.processOne(client, transaction, message);
        settlements.push(this.settlementOf(message, result, performance.now() - started));
        if (result.reply !== undefined && message.reply_to) {
          replies.push({ recipient: message.reply_to, pattern: message.pattern });
        }
      }
      const settled = await client.query(
        this.deps.statements.settle([
          settlements.map((s) => s.id),
          settlements.map((s) => s.outcome),
          settlements.map((s) => s.delayMs),
          settlements.map((s) => s.error),
        ]),
      );
      if (settled.rowCount !== settlements.length) {
        throw new Error(
          'another consumer settled a message of this batch first (its lease ran out); ' +
            'rolling back so that each message is consumed once',
        );
      }
      await client.query('COMMIT');
      transaction.committed();
      if (replies.length > 0) this.deps.notifier.wake(replies);
      this.report(batch, settlements);
    } catch (error) {
      broken = error as Error;
      transaction.rolledBack();
      await client.query('ROLLBACK').catch(() => undefined);
      this.logger.error(
        `Batch of ${batch.length} in group "${this.deps.group}" rolled back; its messages return ` +
          `when their lease ends: ${broken.message}`,
      );
      this.deps.onRetryScheduled(this.deps.leaseMs);
    } finally {
      client.off('error', onError);
      // A connection that failed mid-transaction is discarded rather than reused.
      if (this.active.delete(client)) client.release(broken);
    }
  }

  private async processOne(
    client: pg.PoolClient,
    transaction: ActiveTransaction,
    message: ClaimedMessage,
  ): Promise<HandleResult> {
    if (message.attempts > this.deps.maxAttempts) {
      // Its consumer died during the last allowed attempt (a crash counts as an attempt).
      return {
        outcome: 'dead',
        rollback: false,
        error: `the consumer died during attempt ${message.attempts - 1} of ${this.deps.maxAttempts}`,
      };
    }
    // A clean savepoint is open on entry: BEGIN_BATCH opened the first one, and each message
    // leaves a fresh one behind for the next (RELEASE and SAVEPOINT share one round trip).
    let result = await runInTransaction(transaction, () => this.deps.handle(message, transaction));
    if (!result.rollback) {
      try {
        await transaction.settled();
        if (result.reply !== undefined) await this.writeReply(client, message, result.reply);
        await client.query(NEXT_SAVEPOINT);
        return result;
      } catch (error) {
        // A write the handler started failed, or it swallowed a failed statement, which
        // aborted the transaction: the message fails like a thrown error.
        result = {
          outcome: 'failed',
          rollback: true,
          error: `transaction aborted: ${(error as Error).message}`,
        };
      }
    }
    await transaction.settled().catch(() => undefined);
    // Undoes the handler's writes; the savepoint stays open and clean.
    await client.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
    if (result.reply !== undefined) {
      await this.writeReply(client, message, result.reply);
      await client.query(NEXT_SAVEPOINT);
    }
    return result;
  }

  /** Writes a request's reply in the consume transaction. */
  async writeReply(client: pg.ClientBase, message: ClaimedMessage, reply: unknown): Promise<void> {
    if (!message.reply_to || !message.correlation_id) return;
    await client.query(
      this.deps.statements.insertReply([
        message.reply_to,
        message.pattern,
        message.correlation_id,
        JSON.stringify(reply),
        `reply:${message.id}`,
      ]),
    );
  }

  private settlementOf(
    message: ClaimedMessage,
    result: HandleResult,
    durationMs: number,
  ): Settlement {
    const base = { id: message.id, error: result.error ?? null, durationMs, delayMs: 0 };
    if (result.outcome === 'consumed') return { ...base, outcome: 'consumed' };
    if (result.outcome === 'dead' || message.attempts >= this.deps.maxAttempts) {
      return { ...base, outcome: 'dead' };
    }
    const delayMs = retryDelay(message.attempts, this.deps.retryDelayMs, this.deps.maxRetryDelayMs);
    return { ...base, outcome: 'retry', delayMs };
  }

  private report(batch: readonly ClaimedMessage[], settlements: Settlement[]): void {
    const byId = new Map(batch.map((message) => [message.id, message]));
    for (const settlement of settlements) {
      const message = byId.get(settlement.id)!;
      this.deps.onOutcome({
        type: OUTCOME_TYPES[settlement.outcome],
        id: message.id,
        pattern: message.pattern,
        group: this.deps.group,
        attempt: message.attempts,
        durationMs: settlement.durationMs,
        queuedMs: message.queued_ms,
        error: settlement.error ?? undefined,
      });
      if (settlement.outcome === 'retry') {
        this.deps.onRetryScheduled(settlement.delayMs);
        this.logger.warn(
          `"${message.pattern}" #${message.id} failed attempt ${message.attempts}/` +
            `${this.deps.maxAttempts}; retrying in ${settlement.delayMs} ms: ${settlement.error}`,
        );
      } else if (settlement.outcome === 'dead') {
        this.logger.error(
          `"${message.pattern}" #${message.id} dead-lettered after attempt ${message.attempts}: ` +
            `${settlement.error}`,
        );
        this.deps.onDeadLetter({
          id: message.id,
          pattern: message.pattern,
          group: this.deps.group,
          attempts: message.attempts,
          error: settlement.error ?? 'unknown error',
        });
      }
    }
  }
}
