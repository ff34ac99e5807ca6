-- Messages as rows: one row per (message, recipient). A recipient is a consumer group for events
-- and requests, or a client's reply inbox for replies. {{schema}} is replaced by the migrator with
-- the quoted schema name.

-- Which groups consume which patterns. Rows persist across restarts and deployments, so an event
-- emitted while its consumers are down still gets a row per group and waits for them.
CREATE TABLE {{schema}}.subscriptions (
  pattern     text        NOT NULL,
  group_name  text        NOT NULL,
  kind        text        NOT NULL CHECK (kind IN ('event', 'request')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  seen_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (pattern, kind, group_name)
);

CREATE TABLE {{schema}}.messages (
  id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  recipient        text        NOT NULL,
  pattern          text        NOT NULL,
  kind             text        NOT NULL CHECK (kind IN ('event', 'request', 'reply')),
  -- Exactly-once send: a second insert with the same key for the same recipient is a no-op.
  idempotency_key  text        NOT NULL,
  -- The serialized Nest packet. json, not jsonb: it keeps the text as written and accepts \u0000.
  payload          json        NOT NULL,
  reply_to         text,
  correlation_id   text,
  -- Counted in a committed claim before the handler runs, so crashes are counted too.
  attempts         integer     NOT NULL DEFAULT 0,
  -- When the row is due: now for new rows, the retry time after a failure.
  run_at           timestamptz NOT NULL DEFAULT now(),
  -- The lease of the consumer that claimed the row: until then no other consumer claims it, and
  -- if that consumer dies the row comes back after it. Kept out of every index so that a claim
  -- can update the row in place (a HOT update).
  locked_until     timestamptz,
  -- Requests nobody waits for any more are dropped instead of handled.
  expires_at       timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  consumed_at      timestamptz,
  dead_at          timestamptz,
  last_error       text,
  CONSTRAINT messages_idempotency UNIQUE (recipient, idempotency_key)
) WITH (fillfactor = 80); -- room on each page for the claim's in-place update

-- The claim query's index: pending rows of one recipient in due order.
CREATE INDEX messages_pending ON {{schema}}.messages (recipient, run_at, id)
  WHERE consumed_at IS NULL AND dead_at IS NULL;

-- Dead letters per recipient, for the admin API and the health indicator.
CREATE INDEX messages_dead ON {{schema}}.messages (recipient, dead_at)
  WHERE dead_at IS NOT NULL;

-- Retention deletes consumed rows oldest first.
CREATE INDEX messages_consumed ON {{schema}}.messages (consumed_at)
  WHERE consumed_at IS NOT NULL;
