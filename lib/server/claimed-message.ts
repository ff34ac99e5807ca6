import type pg from 'pg';

/** A row claimed for handling, as returned by the claim query. */
export interface ClaimedMessage {
  readonly id: string;
  readonly pattern: string;
  readonly kind: 'event' | 'request';
  readonly payload: unknown;
  /** Attempts including this one. */
  readonly attempts: number;
  readonly reply_to: string | null;
  readonly correlation_id: string | null;
  readonly idempotency_key: string;
  readonly created_at: Date;
  /** A request whose sender stopped waiting. */
  readonly expired: boolean;
  /** Milliseconds from the emitting transaction's start to this claim, by the database clock. */
  readonly queued_ms: number;
  /** When the row became due, in microseconds since the epoch: where the next claim resumes. */
  readonly run_at_us: string;
}

/**
 * A claimed batch and the connection its claim ran on, still checked out: the batch's consume
 * transaction runs on it, so a batch costs one checkout and its BEGIN leaves the moment the
 * claim answers. Whoever receives it releases the connection through ConsumeConnections.
 */
export interface ClaimedBatch {
  readonly messages: ClaimedMessage[];
  readonly client: pg.PoolClient;
}

/** What became of one message inside the consume transaction. */
export interface HandleResult {
  /** consumed: done. failed: retried with backoff, or dead-lettered after maxAttempts. dead: now. */
  readonly outcome: 'consumed' | 'failed' | 'dead';
  readonly error?: string;
  /** Undo the handler's writes (roll back to the message's savepoint) before settling. */
  readonly rollback: boolean;
  /** A reply to write for a request, already serialized. */
  readonly reply?: unknown;
}
