import { Logger } from '@nestjs/common';
import type { MessageOutcome } from '../events/message-outcome.events.js';
import type { DeadLetterEvent } from '../events/postgres.events.js';
import type { ClaimedMessage, HandleResult } from './claimed-message.js';
import { retryDelay } from './retry-delay.js';

/** What the settle statement does with one message. */
export interface Settlement {
  id: string;
  outcome: 'consumed' | 'retry' | 'dead';
  delayMs: number;
  error: string | null;
  durationMs: number;
}

/** A handler's outcome, with how long it took; kept when a batch is replayed. */
export interface Handled {
  readonly result: HandleResult;
  readonly durationMs: number;
}

export interface SettlementPolicyDeps {
  readonly group: string;
  readonly maxAttempts: number;
  readonly retryDelayMs: number;
  readonly maxRetryDelayMs: number;
  readonly onDeadLetter: (event: DeadLetterEvent) => void;
  /** Told of every retry, so the owner can wake the group when the first one is due. */
  readonly onRetryScheduled: (delayMs: number) => void;
  /** Told what became of each message, after the commit. */
  readonly onOutcome: (outcome: MessageOutcome) => void;
}

const OUTCOME_TYPES = { consumed: 'handled', retry: 'failed', dead: 'deadLettered' } as const;

/**
 * Decides what becomes of a handled message (consumed, retried with backoff, or dead-lettered
 * once its attempts are spent) and, after the commit, tells the owner, logs and raises events.
 */
export class SettlementPolicy {
  private readonly logger = new Logger('ServerPostgres');

  constructor(private readonly deps: SettlementPolicyDeps) {}

  settle(message: ClaimedMessage, { result, durationMs }: Handled): Settlement {
    const base = { id: message.id, error: result.error ?? null, durationMs, delayMs: 0 };
    if (result.outcome === 'consumed') return { ...base, outcome: 'consumed' };
    if (result.outcome === 'dead' || message.attempts >= this.deps.maxAttempts) {
      return { ...base, outcome: 'dead' };
    }
    const delayMs = retryDelay(message.attempts, this.deps.retryDelayMs, this.deps.maxRetryDelayMs);
    return { ...base, outcome: 'retry', delayMs };
  }

  /** Reports a committed batch's settlements. */
  report(batch: readonly ClaimedMessage[], settlements: readonly Settlement[]): void {
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
