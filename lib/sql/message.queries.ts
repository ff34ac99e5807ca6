import { statement } from './statement.js';

/**
 * Every statement the transport runs against its tables, built once per schema. Values are always
 * `$n` parameters; the schema arrives already quoted from option resolution.
 */
/** The savepoint that isolates each message of a batch. */
export const MESSAGE_SAVEPOINT = 'pg_transport_message';

/** Opens the consume transaction and the first message's savepoint in one round trip. */
export const BEGIN_BATCH = `BEGIN; SAVEPOINT ${MESSAGE_SAVEPOINT}`;

export function messageQueries(schema: string) {
  /** The claim of up to $2 rows for recipient $1, leased for $3 ms, with a condition added. */
  const claimWhere = (condition: string) => `
    WITH next AS (
      SELECT id FROM ${schema}.messages
      WHERE recipient = $1 AND consumed_at IS NULL AND dead_at IS NULL AND run_at <= now()
        AND (locked_until IS NULL OR locked_until <= now()) ${condition}
      ORDER BY run_at, id
      LIMIT $2
      FOR UPDATE SKIP LOCKED
    )
    UPDATE ${schema}.messages AS m
    SET attempts = m.attempts + 1, locked_until = now() + $3 * interval '1 millisecond'
    FROM next, (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
    WHERE m.id = next.id
    RETURNING m.id::text AS id, m.pattern, m.kind, m.payload, m.attempts, m.reply_to,
              m.correlation_id, m.idempotency_key, m.created_at,
              (m.expires_at IS NOT NULL AND m.expires_at < now()) AS expired,
              (extract(epoch FROM clock_timestamp() - m.created_at) * 1000)::float8 AS queued_ms,
              (extract(epoch FROM m.run_at) * 1000000)::bigint::text AS run_at_us`;
  /**
   * One row per subscribed group; a repeated key inserts nothing. Returns the groups that got a
   * new row. $1 pattern, $2 idempotency key, $3 payload.
   */
  const insertEvent = `
    INSERT INTO ${schema}.messages (recipient, pattern, kind, idempotency_key, payload)
    SELECT group_name, $1, 'event', $2, $3 FROM ${schema}.subscriptions
    WHERE pattern = $1 AND kind = 'event'
    ON CONFLICT (recipient, idempotency_key) DO NOTHING
    RETURNING recipient`;
  return {
    /** Records that `group` consumes these patterns, or refreshes `seen_at` if it already did. */
    upsertSubscriptions: `
    INSERT INTO ${schema}.subscriptions (pattern, kind, group_name)
    SELECT pattern, kind, $1 FROM unnest($2::text[], $3::text[]) AS s(pattern, kind)
    ON CONFLICT (pattern, kind, group_name) DO UPDATE SET seen_at = now()`,

    insertEvent,

    /**
     * Several events in one statement, each to every group subscribed to its pattern; a repeated
     * key inserts nothing. Returns each new row's group, pattern and key.
     * $1 patterns, $2 idempotency keys, $3 payloads (parallel arrays).
     */
    insertEvents: `
    INSERT INTO ${schema}.messages (recipient, pattern, kind, idempotency_key, payload)
    SELECT s.group_name, e.pattern, 'event', e.key, e.payload
    FROM unnest($1::text[], $2::text[], $3::json[]) WITH ORDINALITY AS e(pattern, key, payload, n)
    JOIN ${schema}.subscriptions AS s ON s.pattern = e.pattern AND s.kind = 'event'
    ORDER BY e.n
    ON CONFLICT (recipient, idempotency_key) DO NOTHING
    RETURNING recipient, pattern, idempotency_key`,

    /** Whether any group subscribes to an event pattern. $1 pattern. */
    hasEventSubscriber: `
    SELECT EXISTS (
      SELECT 1 FROM ${schema}.subscriptions WHERE pattern = $1 AND kind = 'event'
    ) AS subscribed`,

    /**
     * The insert of `insertEvent`, plus a NOTIFY of each new row's wake-up, as one statement that
     * any tool able to run SQL in its transaction can run (Prisma's $executeRawUnsafe, MikroORM's
     * execute); also what a lone emit runs. One NOTIFY per group keeps every payload far below
     * PostgreSQL's 8000-byte limit. Returns the groups that got a new row.
     * $1 pattern, $2 idempotency key, $3 payload, $4 wake-up channel.
     */
    insertEventAndNotify: `
    WITH inserted AS (${insertEvent})
    SELECT recipient, pg_notify($4, json_build_array(json_build_array(recipient, $1::text))::text)
    FROM inserted`,

    /**
     * A request goes to the group serving the pattern (the most recently started one, should two
     * groups serve it). Returns no row when no group serves it.
     * $1 pattern, $2 correlation id (also the idempotency key), $3 payload, $4 reply inbox,
     * $5 milliseconds until nobody waits for the reply any more.
     */
    insertRequest: `
    WITH target AS (
      SELECT group_name FROM ${schema}.subscriptions
      WHERE pattern = $1 AND kind = 'request'
      ORDER BY seen_at DESC LIMIT 1
    )
    INSERT INTO ${schema}.messages
      (recipient, pattern, kind, idempotency_key, payload, reply_to, correlation_id, expires_at)
    SELECT group_name, $1, 'request', $2, $3, $4, $2, now() + $5 * interval '1 millisecond'
    FROM target
    ON CONFLICT (recipient, idempotency_key) DO NOTHING
    RETURNING recipient`,

    /**
     * A reply, written in the handler's transaction. $1 inbox, $2 pattern, $3 correlation id,
     * $4 payload, $5 idempotency key (derived from the request row, so a replay inserts nothing).
     */
    insertReply: `
    INSERT INTO ${schema}.messages
      (recipient, pattern, kind, idempotency_key, payload, correlation_id)
    VALUES ($1, $2, 'reply', $5, $4, $3)
    ON CONFLICT (recipient, idempotency_key) DO NOTHING`,

    /**
     * Claim, committed on its own before the handler runs: counts the attempt (so a crash is
     * counted too) and leases the rows. Only columns outside every index change, so the row is
     * updated in place. The commit need not wait for the WAL flush: losing an attempt count in
     * a server crash is harmless, and the consume that follows is flushed as usual.
     * $1 recipient, $2 batch size, $3 lease in milliseconds.
     */
    claim: claimWhere(''),

    /**
     * `claim`, resuming after the last row a full batch claimed: the index scan starts there
     * instead of walking entries of rows settled since the last vacuum, which on a large table
     * without autovacuum made every claim read thousands of index pages.
     * $1 to $3 as for `claim`, $4 and $5 the last claimed row's run_at (microseconds since the
     * epoch) and id.
     */
    claimAfter: claimWhere(
      `AND (run_at, id) > ('epoch'::timestamptz + $4::bigint * interval '1 microsecond', $5::bigint)`,
    ),

    /**
     * Settles a batch in the consume transaction: consumed, scheduled for retry, or dead-lettered.
     * Returns how many rows it settled. A row another consumer settled first (possible only once
     * this consumer's lease ran out) is not settled again, and `check_settled` (migration 0004)
     * then raises, before the COMMIT sent with this statement can run: whoever commits first
     * wins, which keeps consume exactly-once without locking claimed rows a second time. The
     * "not yet settled" test is written so that it does not match the pending index's predicate:
     * the planner then always looks the ids up by primary key, even on a table it has no
     * statistics for, instead of scanning every pending row.
     * $1 ids, $2 outcomes, $3 retry delays in milliseconds, $4 errors.
     */
    settle: `
    WITH settled AS (
      UPDATE ${schema}.messages AS m SET
        consumed_at = CASE WHEN o.outcome = 'consumed' THEN now() END,
        dead_at = CASE WHEN o.outcome = 'dead' THEN now() END,
        run_at = CASE WHEN o.outcome = 'retry'
                      THEN now() + o.delay_ms * interval '1 millisecond' ELSE m.run_at END,
        locked_until = NULL,
        last_error = coalesce(o.error, m.last_error)
      FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[]) AS o(id, outcome, delay_ms, error)
      WHERE m.id = o.id AND coalesce(m.consumed_at, m.dead_at) IS NULL
      RETURNING m.id
    )
    SELECT ${schema}.check_settled(cardinality($1::bigint[]), (SELECT count(*)::int FROM settled))
      AS settled`,

    /** Takes the replies waiting in a client's inbox. $1 inbox. */
    takeReplies: `
    DELETE FROM ${schema}.messages
    WHERE recipient = $1 AND kind = 'reply'
    RETURNING correlation_id, payload`,
  };
}

export type MessageQueries = ReturnType<typeof messageQueries>;

/** The hot statements, prepared once per connection unless `prepared` is false. */
export function messageStatements(queries: MessageQueries, prepared: boolean) {
  return {
    insertEvent: statement(queries.insertEvent, prepared),
    insertEventAndNotify: statement(queries.insertEventAndNotify, prepared),
    insertEvents: statement(queries.insertEvents, prepared),
    hasEventSubscriber: statement(queries.hasEventSubscriber, prepared),
    insertRequest: statement(queries.insertRequest, prepared),
    insertReply: statement(queries.insertReply, prepared),
    claim: statement(queries.claim, prepared),
    claimAfter: statement(queries.claimAfter, prepared),
    settle: statement(queries.settle, prepared),
    takeReplies: statement(queries.takeReplies, prepared),
  };
}

export type MessageStatements = ReturnType<typeof messageStatements>;
