/**
 * Statements of the operational services: the health indicator's backlog query, the dead-letter
 * admin, and the retention job. Like `message.queries.ts`, values are `$n` parameters and the
 * schema arrives already quoted from option resolution.
 */

/** Which rows a dead-letter operation touches; only the filters given become conditions. */
export interface DeadLetterScope {
  readonly group?: string;
  readonly pattern?: string;
}

/**
 * The conditions of a scope, numbering its parameters from `first`. Conditions are left out
 * rather than written as `$n IS NULL OR …`, so the planner always sees a plain equality it can
 * match with an index, whatever the plan cache decides.
 */
export function scopeOf(
  scope: DeadLetterScope,
  first: number,
): { where: string; values: string[]; next: number } {
  const conditions = ['dead_at IS NOT NULL'];
  const values: string[] = [];
  if (scope.group !== undefined) {
    values.push(scope.group);
    conditions.push(`recipient = $${first + values.length - 1}`);
  }
  if (scope.pattern !== undefined) {
    values.push(scope.pattern);
    conditions.push(`pattern = $${first + values.length - 1}`);
  }
  return { where: conditions.join(' AND '), values, next: first + values.length };
}

export function healthQueries(schema: string) {
  return {
    /**
     * Backlog per consumer group (reply inboxes are not groups, so they never appear). Each
     * figure is one probe of a partial index: `messages_pending` gives the count and, through its
     * (recipient, run_at) order, the most overdue row in one step; `messages_dead` the dead
     * letters. Counts stop at $1 so a huge backlog cannot make the probe slow.
     * The age runs from `run_at`: when the row became due (its creation, or its scheduled retry);
     * rows leased or scheduled in the future count as pending with age 0.
     */
    backlog: `
    SELECT g.group_name AS "group",
           (SELECT count(*) FROM (
              SELECT 1 FROM ${schema}.messages
              WHERE recipient = g.group_name AND consumed_at IS NULL AND dead_at IS NULL
              LIMIT $1) AS p)::int AS pending,
           (SELECT greatest(0, floor(extract(epoch FROM now() - run_at) * 1000))::bigint
            FROM ${schema}.messages
            WHERE recipient = g.group_name AND consumed_at IS NULL AND dead_at IS NULL
            ORDER BY run_at LIMIT 1) AS oldest_pending_age_ms,
           (SELECT count(*) FROM (
              SELECT 1 FROM ${schema}.messages
              WHERE recipient = g.group_name AND dead_at IS NOT NULL
              LIMIT $1) AS d)::int AS dead_letters
    FROM (SELECT DISTINCT group_name FROM ${schema}.subscriptions) AS g
    ORDER BY g.group_name`,
  };
}

const DEAD_LETTER_COLUMNS = `id::text AS id, recipient, pattern, kind, attempts, created_at,
       dead_at, last_error`;

export function deadLetterQueries(schema: string) {
  return {
    /** A page of dead letters, newest id first; `before` continues after the previous page. */
    list(scope: DeadLetterScope, before: boolean) {
      const { where, values, next } = scopeOf(scope, 1);
      const keyset = before ? ` AND id < $${next}::bigint` : '';
      const limit = `$${next + (before ? 1 : 0)}`;
      return {
        text: `SELECT ${DEAD_LETTER_COLUMNS} FROM ${schema}.messages
        WHERE ${where}${keyset} ORDER BY id DESC LIMIT ${limit}`,
        values,
      };
    },

    /** One dead letter with everything stored about it. $1 id. */
    inspect: `
    SELECT ${DEAD_LETTER_COLUMNS}, idempotency_key, payload, reply_to, correlation_id, run_at,
           expires_at
    FROM ${schema}.messages WHERE id = $1::bigint AND dead_at IS NOT NULL`,

    /**
     * Makes a dead letter pending again with a fresh attempt budget, due now. `last_error` is
     * kept as history until the next failure overwrites it. $1 id.
     */
    requeue: `
    UPDATE ${schema}.messages SET dead_at = NULL, attempts = 0, run_at = now()
    WHERE id = $1::bigint AND dead_at IS NOT NULL
    RETURNING recipient, pattern`,

    /**
     * Requeues up to $n dead letters that died no later than the cutoff, so a message that dies
     * again while `requeueAll` runs is not picked up a second time. No ORDER BY: the partial
     * index `messages_dead` is scanned as it comes, whatever the size of the table.
     */
    requeueBatch(scope: DeadLetterScope) {
      const { where, values, next } = scopeOf(scope, 1);
      return {
        text: `
        WITH batch AS (
          SELECT id FROM ${schema}.messages
          WHERE ${where} AND dead_at <= $${next}::timestamptz
          LIMIT $${next + 1} FOR UPDATE SKIP LOCKED
        )
        UPDATE ${schema}.messages AS m SET dead_at = NULL, attempts = 0, run_at = now()
        FROM batch WHERE m.id = batch.id
        RETURNING m.recipient, m.pattern`,
        values,
      };
    },

    /** Deletes one message, only if it is a dead letter. $1 id. */
    purge: `DELETE FROM ${schema}.messages WHERE id = $1::bigint AND dead_at IS NOT NULL`,

    /** Deletes up to $n dead letters that died no later than the cutoff. */
    purgeBatch(scope: DeadLetterScope) {
      const { where, values, next } = scopeOf(scope, 1);
      return {
        text: `
        DELETE FROM ${schema}.messages WHERE id IN (
          SELECT id FROM ${schema}.messages
          WHERE ${where} AND dead_at <= $${next}::timestamptz
          LIMIT $${next + 1} FOR UPDATE SKIP LOCKED)`,
        values,
      };
    },

    /** The database's clock, the cutoff of the bulk operations. */
    now: 'SELECT now()::text AS now',
  };
}

/**
 * First key of the retention job's two-key advisory lock ("pgre"); the migrator uses "pgtr".
 * The second key is `hashtext(schema)`, so schemas are cleaned independently.
 */
export const RETENTION_LOCK_NAMESPACE = 0x70677265;

export function retentionQueries(schema: string) {
  return {
    /**
     * Taken at the start of every batch's transaction and released by its commit, so a crashed
     * process never leaves it held. $1 schema name.
     */
    tryLock: `SELECT pg_try_advisory_xact_lock(${RETENTION_LOCK_NAMESPACE}, hashtext($1)) AS locked`,

    /**
     * Consumed rows older than the window, oldest first along `messages_consumed`. Rows another
     * transaction holds are skipped, never waited for. $1 window in ms, $2 batch size.
     */
    deleteConsumed: `
    DELETE FROM ${schema}.messages WHERE id IN (
      SELECT id FROM ${schema}.messages
      WHERE consumed_at IS NOT NULL AND consumed_at < now() - $1 * interval '1 millisecond'
      ORDER BY consumed_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,

    /**
     * Rows that will never be consumed: replies nobody took (their client gave up or died) and
     * requests that expired unhandled (their group was not running), both older than the window.
     * Only pending rows qualify, found through `messages_pending`. $1 window in ms, $2 batch size.
     */
    deleteAbandoned: `
    DELETE FROM ${schema}.messages WHERE id IN (
      SELECT id FROM ${schema}.messages
      WHERE consumed_at IS NULL AND dead_at IS NULL AND (
        (kind = 'reply' AND created_at < now() - $1 * interval '1 millisecond') OR
        (kind = 'request' AND expires_at < now() - $1 * interval '1 millisecond'))
      LIMIT $2 FOR UPDATE SKIP LOCKED)`,

    /** Dead letters older than their own window. $1 window in ms, $2 batch size. */
    deleteDead: `
    DELETE FROM ${schema}.messages WHERE id IN (
      SELECT id FROM ${schema}.messages
      WHERE dead_at IS NOT NULL AND dead_at < now() - $1 * interval '1 millisecond'
      LIMIT $2 FOR UPDATE SKIP LOCKED)`,
  };
}
