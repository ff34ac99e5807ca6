/** What became of one message, published after its consume transaction committed. */
export interface MessageOutcome {
  /** handled: done. failed: will be retried. deadLettered: moved to dead-letter. */
  readonly type: 'handled' | 'failed' | 'deadLettered';
  readonly id: string;
  readonly pattern: string;
  readonly group: string;
  /** 1 for the first delivery; above 1 the message was redelivered. */
  readonly attempt: number;
  /** Time spent in the handler, in milliseconds. */
  readonly durationMs: number;
  /**
   * From the start of the transaction that emitted the message to the start of this attempt, by
   * the database's clock (no skew between hosts), in milliseconds.
   */
  readonly queuedMs: number;
  readonly error?: string;
}

/** Running totals of one server since it started. */
export interface MessageCounters {
  handled: number;
  failed: number;
  deadLettered: number;
  /** Deliveries with attempt > 1, whatever their outcome. */
  redelivered: number;
}
