import { Controller } from '@nestjs/common';
import { Ctx, EventPattern, Payload, type ClientProxy } from '@nestjs/microservices';
import pg from 'pg';
import { lastValueFrom } from 'rxjs';
import {
  POSTGRES_TRANSPORT,
  PostgresContext,
  type PostgresStatus,
  type ServerPostgres,
} from '../../lib/index.js';
import { query } from './transport.js';
import { waitFor } from './wait-for.js';

/**
 * The business table of the fault tests. No unique constraint on purpose: a message handled
 * twice shows up as a second row, so `n === distinct` proves exactly-once.
 */
export const CREATE_HANDLED_TABLE =
  'CREATE TABLE handled (key text NOT NULL, message_id text NOT NULL, attempt int NOT NULL)';

export const JOB_PATTERN = 'fault.job';

/** Writes one business row per message, in the consume transaction. */
@Controller()
export class JobController {
  @EventPattern<string>(JOB_PATTERN, POSTGRES_TRANSPORT)
  async job(@Payload() job: { key: string }, @Ctx() ctx: PostgresContext) {
    await ctx.query('INSERT INTO handled (key, message_id, attempt) VALUES ($1, $2, $3)', [
      job.key,
      ctx.getMessageId(),
      ctx.getAttempt(),
    ]);
  }
}

/** `count` distinct keys `${prefix}-0` … */
export function keysOf(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
}

/** Emits `{ key }` for every key, from `emitters` concurrent loops, each awaiting its emit. */
export async function emitAll(
  client: ClientProxy,
  pattern: string,
  keys: readonly string[],
  emitters = 10,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: emitters }, async () => {
      while (next < keys.length) {
        const key = keys[next++];
        await lastValueFrom(client.emit(pattern, { key }));
      }
    }),
  );
}

/** Business rows whose key starts with `${prefix}-`, and how many distinct keys they hold. */
export async function handledCounts(
  url: string,
  prefix: string,
): Promise<{ n: number; distinct: number }> {
  const [counts] = await query<{ n: number; distinct: number }>(
    url,
    'SELECT count(*)::int AS n, count(DISTINCT key)::int AS distinct FROM handled WHERE key LIKE $1',
    [`${prefix}-%`],
  );
  return counts;
}

/** Messages still waiting (neither consumed nor dead) and messages dead-lettered. */
export async function queueCounts(url: string): Promise<{ pending: number; dead: number }> {
  const [counts] = await query<{ pending: number; dead: number }>(
    url,
    `SELECT count(*) FILTER (WHERE consumed_at IS NULL AND dead_at IS NULL)::int AS pending,
            count(*) FILTER (WHERE dead_at IS NOT NULL)::int AS dead
     FROM nestjs_transport.messages`,
  );
  return counts;
}

/** Every status a server reported through `on('status')`, with when it arrived. */
export class StatusLog {
  readonly entries: Array<{ status: PostgresStatus; at: number }> = [];

  constructor(server: ServerPostgres) {
    server.on('status', (status) => this.entries.push({ status, at: Date.now() }));
  }

  /** A position in the log, for `since`. */
  mark(): number {
    return this.entries.length;
  }

  /** Statuses reported after `mark`, with consecutive repeats collapsed. */
  since(mark: number): PostgresStatus[] {
    return this.entries
      .slice(mark)
      .map((entry) => entry.status)
      .filter((status, i, all) => i === 0 || all[i - 1] !== status);
  }

  /** The first report of `status` after `mark`. */
  first(status: PostgresStatus, mark: number): { status: PostgresStatus; at: number } | undefined {
    return this.entries.slice(mark).find((entry) => entry.status === status);
  }

  get last(): PostgresStatus | undefined {
    return this.entries.at(-1)?.status;
  }
}

/**
 * Opens a transaction holding the messages table in SHARE mode, which lets readers through but
 * holds every UPDATE and INSERT, and waits until one of the consumers' claims on `database` is
 * waiting for it. COMMIT on the returned client (or end it) lets the claim go on.
 */
export async function holdClaimOnLock(url: string, database: string): Promise<pg.Client> {
  const locker = new pg.Client(url);
  await locker.connect();
  try {
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE nestjs_transport.messages IN SHARE MODE');
    await waitFor(
      async () =>
        (
          await query(
            url,
            `SELECT 1 FROM pg_stat_activity
             WHERE datname = $1 AND wait_event_type = 'Lock' AND query LIKE '%WITH next AS%'`,
            [database],
          )
        ).length > 0,
      { message: 'a claim waiting for the lock' },
    );
    return locker;
  } catch (error) {
    await locker.end();
    throw error;
  }
}
