/** Which dead letters a bulk call touches. Omitted filters match everything. */
export interface DeadLetterFilter {
  /** Consumer group (the row's recipient). */
  group?: string;
  pattern?: string;
}

export interface ListDeadLettersOptions extends DeadLetterFilter {
  /** Page size, 1 to 1000. Default 50. */
  limit?: number;
  /** Continue after a previous page: pass its `nextBefore`. Rows come newest id first. */
  before?: string | number | bigint;
}

/** A dead letter as listed (no payload). */
export interface DeadLetterSummary {
  /** The row id, as a decimal string (bigint). */
  id: string;
  group: string;
  pattern: string;
  kind: 'event' | 'request';
  attempts: number;
  createdAt: Date;
  deadAt: Date;
  /** The last failure, as `Name: message`. */
  lastError: string | null;
}

export interface DeadLetterPage {
  items: DeadLetterSummary[];
  /** Pass as `before` for the next page; absent on the last page. */
  nextBefore?: string;
}

/** Everything stored about a dead letter. */
export interface DeadLetter extends DeadLetterSummary {
  idempotencyKey: string;
  /** The serialized Nest packet as stored (`{ pattern, data }`, plus `id` for requests). */
  payload: unknown;
  replyTo: string | null;
  correlationId: string | null;
  runAt: Date;
  /** Requests only: when the sender stopped waiting. A requeued expired request is dropped. */
  expiresAt: Date | null;
}

export interface DeadLetterRow {
  id: string;
  recipient: string;
  pattern: string;
  kind: 'event' | 'request';
  attempts: number;
  created_at: Date;
  dead_at: Date;
  last_error: string | null;
  idempotency_key?: string;
  payload?: unknown;
  reply_to?: string | null;
  correlation_id?: string | null;
  run_at?: Date;
  expires_at?: Date | null;
}

export function summaryOf(row: DeadLetterRow): DeadLetterSummary {
  return {
    id: row.id,
    group: row.recipient,
    pattern: row.pattern,
    kind: row.kind,
    attempts: row.attempts,
    createdAt: row.created_at,
    deadAt: row.dead_at,
    lastError: row.last_error,
  };
}

export function deadLetterOf(row: DeadLetterRow): DeadLetter {
  return {
    ...summaryOf(row),
    idempotencyKey: row.idempotency_key!,
    payload: row.payload,
    replyTo: row.reply_to ?? null,
    correlationId: row.correlation_id ?? null,
    runAt: row.run_at!,
    expiresAt: row.expires_at ?? null,
  };
}
