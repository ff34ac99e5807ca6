import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { lastValueFrom } from 'rxjs';
import { ClientPostgres, migrate, PostgresTransactionHost } from '../../lib/index.js';
import { messageQueries } from '../../lib/sql/message.queries.js';
import { statement } from '../../lib/sql/statement.js';
import { BENCH_PATTERN } from '../support/contender.js';
import { benchPool, inFreshDatabase, query } from '../support/database.js';
import { rotate } from '../support/harness.js';
import {
  formatCount,
  formatRuns,
  type BenchContext,
  type Scenario,
  type ScenarioResult,
} from '../support/report.js';
import { CpuMeter, type CpuUsage } from '../support/resources.js';
import { median, summarizeRuns, type RunSummary } from '../support/stats.js';
import {
  BUSINESS_TABLE,
  closedLoops,
  INSERT_BUSINESS_ROW,
  insertBusinessRow,
  openConnections,
} from '../support/workload.js';
import { BENCH_GROUP, subscribeBenchGroup } from '../support/transport-contender.js';

const SIZES = {
  tiny: { publishers: [1, 4], seconds: 0.3 },
  full: { publishers: [1, 4, 16, 64], seconds: 4 },
};

/** The message row as the library writes it, minus the library. */
const INSERT_MESSAGE_ROW = `
  INSERT INTO nestjs_transport.messages (recipient, pattern, kind, idempotency_key, payload)
  VALUES ($1, $2, 'event', $3, $4)`;
/** The wake-up hint the library sends, here inside the publishing transaction. */
const NOTIFY = `SELECT pg_notify('nestjs_transport:wake', $1)`;

/**
 * The baselines send every statement prepared, as the library sends its own and a handler's
 * repeated ones: the ceilings are then the fastest way to send the same rows, and the gap to
 * ours is the library's work, not the protocol.
 */
const insertMessageRow = statement(INSERT_MESSAGE_ROW, true);
const insertMessageRowAndNotify = statement(
  `WITH inserted AS (${INSERT_MESSAGE_ROW} RETURNING id) SELECT pg_notify('nestjs_transport:wake', $5) FROM inserted`,
  true,
);
const notifyHint = statement(NOTIFY, true);

/**
 * Two shapes, each with its ceiling, its in-transaction NOTIFY baseline and ours. "message": the
 * transaction writes only the message row. "business": it writes a business row and the message.
 */
type Variant =
  | 'message-ceiling'
  | 'message-notify'
  | 'message-ours'
  | 'message-ours-unawaited'
  | 'business-ceiling'
  | 'business-notify'
  | 'business-sql'
  | 'business-ours';
const VARIANTS: Variant[] = [
  'message-ceiling',
  'message-notify',
  'message-ours',
  'message-ours-unawaited',
  'business-ceiling',
  'business-notify',
  'business-sql',
  'business-ours',
];
const LABELS: Record<Variant, string> = {
  'message-ceiling': 'INSERT of the message row (ceiling)',
  'message-notify': 'INSERT + pg_notify, one transaction',
  'message-ours': 'ours: `host.run(() => emit)`, emit awaited',
  'message-ours-unawaited': 'ours, emit not awaited',
  'business-ceiling': 'BEGIN; 2 INSERTs; COMMIT (ceiling)',
  'business-notify': 'same + pg_notify before COMMIT',
  'business-sql': "BEGIN; INSERT; the library's emit INSERT; COMMIT (bare `pg`)",
  'business-ours': 'ours: `host.run(() => { insert; emit })`',
};

/** The variants whose message rows get `messageValues`' keys ("k" and a number). */
const PLAIN_KEYED: Variant[] = [
  'message-ceiling',
  'message-notify',
  'business-ceiling',
  'business-notify',
];

export interface AtomicPublishData {
  /** Transactions committed per second, by variant and number of publishers. */
  readonly rates: Record<Variant, Record<number, RunSummary>>;
  /** Every run: committed transactions = message rows (= business rows where written). */
  readonly consistent: boolean;
}

interface Publisher {
  publish(n: number): Promise<void>;
  close(): Promise<void>;
}

function messageValues(n: number): unknown[] {
  return [
    BENCH_GROUP,
    BENCH_PATTERN,
    `k${n}`,
    JSON.stringify({ pattern: BENCH_PATTERN, data: { n, sentAt: 0 } }),
  ];
}

const HINT = JSON.stringify([[BENCH_GROUP, BENCH_PATTERN]]);

/**
 * The statement an emit inside a transaction runs (`INSERT … SELECT` from the subscriptions,
 * `ON CONFLICT DO NOTHING`, `RETURNING` the groups), prepared as the library prepares it: sent
 * by bare `pg`, it separates what the SQL costs from what the library's code costs.
 */
const LIBRARY_EMIT = statement(messageQueries('"nestjs_transport"').insertEvent, true);

/** An emit's values as the library builds them: random key, the serialized Nest packet. */
function emitValues(n: number): unknown[] {
  return [
    BENCH_PATTERN,
    randomUUID(),
    JSON.stringify({ pattern: BENCH_PATTERN, data: { n, sentAt: 0 } }),
  ];
}

function plainPublisher(pool: pg.Pool, variant: Variant): Publisher {
  const notify = variant.endsWith('-notify');
  if (variant.startsWith('message-')) {
    // One statement, committed on its own; with NOTIFY, in the same statement's transaction.
    return {
      publish: async (n) => {
        await pool.query(
          notify
            ? insertMessageRowAndNotify([...messageValues(n), HINT])
            : insertMessageRow(messageValues(n)),
        );
      },
      close: async () => undefined,
    };
  }
  const insertMessage: (n: number) => pg.QueryConfig =
    variant === 'business-sql'
      ? (n) => LIBRARY_EMIT(emitValues(n))
      : (n) => insertMessageRow(messageValues(n));
  return {
    async publish(n) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query(insertBusinessRow([n]));
        await client.query(insertMessage(n));
        if (notify) await client.query(notifyHint([HINT]));
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    close: async () => undefined,
  };
}

async function transportPublisher(
  url: string,
  pool: pg.Pool,
  variant: Variant,
): Promise<Publisher> {
  const host = new PostgresTransactionHost(pool);
  const client = new ClientPostgres({ connectionString: url, migrationsRun: false });
  await client.connect();
  const business = variant === 'business-ours';
  if (variant === 'message-ours-unawaited') {
    // Nest's usual way to emit: the Observable is hot, nobody waits for it; the commit does.
    return {
      publish: (n) =>
        host.run(async () => {
          client.emit(BENCH_PATTERN, { n, sentAt: 0 });
        }),
      close: () => client.close(),
    };
  }
  return {
    publish: (n) =>
      host.run(async () => {
        if (business) await host.query(INSERT_BUSINESS_ROW, [n]);
        await lastValueFrom(client.emit(BENCH_PATTERN, { n, sentAt: 0 }));
      }),
    close: () => client.close(),
  };
}

/** `publishers` loops, each committing one transaction after another until `seconds` pass. */
async function measure(
  url: string,
  variant: Variant,
  publishers: number,
  seconds: number,
): Promise<{ perSecond: number; committed: number; cpu: CpuUsage }> {
  const pool = benchPool(url, publishers);
  const publisher = variant.includes('-ours')
    ? await transportPublisher(url, pool, variant)
    : plainPublisher(pool, variant);
  try {
    // Open every connection first, so the timed part does no connection set-up.
    await openConnections(pool, publishers);
    const meter = await CpuMeter.start(url);
    const { completed, perSecond } = await closedLoops(publishers, seconds, (n) =>
      publisher.publish(n),
    );
    return { perSecond, committed: completed, cpu: meter.stop() };
  } finally {
    await publisher.close();
    await pool.end();
  }
}

export const atomicPublishScenario: Scenario<AtomicPublishData> = {
  name: 'atomic-publish',
  title: '4. Concurrent atomic publish',

  async run(context: BenchContext): Promise<ScenarioResult<AtomicPublishData>> {
    const size = SIZES[context.scale];
    const samples = new Map<string, number[]>();
    /** CPU per committed transaction, [Node.js, PostgreSQL] in ms, per run. */
    const cpu = new Map<string, Array<[number, number]>>();
    let consistent = true;
    for (let run = 0; run < context.runs; run++) {
      await inFreshDatabase(context.serverUrl, async (db) => {
        await query(db.url, BUSINESS_TABLE);
        await migrate(db.url);
        // The group must be subscribed for an emit to store a row; no consumer runs here.
        await subscribeBenchGroup(db.url);
        for (const publishers of size.publishers) {
          for (const variant of rotate(VARIANTS, run + size.publishers.indexOf(publishers))) {
            await query(db.url, 'TRUNCATE business, nestjs_transport.messages');
            await query(db.url, 'CHECKPOINT');
            const result = await measure(db.url, variant, publishers, size.seconds);
            const [counts] = await query<{ business: number; messages: number; plain: number }>(
              db.url,
              `SELECT (SELECT count(*) FROM business)::int AS business,
                      (SELECT count(*) FROM nestjs_transport.messages)::int AS messages,
                      (SELECT count(*) FROM nestjs_transport.messages
                       WHERE idempotency_key ~ '^k[0-9]+$')::int AS plain`,
            );
            const businessRows = variant.startsWith('business-') ? result.committed : 0;
            // The baselines' rows carry the keys messageValues gives them, the library's its own.
            const plainRows = PLAIN_KEYED.includes(variant) ? result.committed : 0;
            if (
              counts.business !== businessRows ||
              counts.messages !== result.committed ||
              counts.plain !== plainRows
            ) {
              consistent = false;
            }
            const key = `${variant}:${publishers}`;
            samples.set(key, [...(samples.get(key) ?? []), result.perSecond]);
            cpu.set(key, [
              ...(cpu.get(key) ?? []),
              [result.cpu.nodeMs / result.committed, result.cpu.postgresMs / result.committed],
            ]);
            context.log(
              `atomic-publish run ${run + 1}/${context.runs} ${publishers} publishers ` +
                `${LABELS[variant]}: ${formatCount(result.perSecond)}/s`,
            );
          }
        }
      });
    }
    const rates = Object.fromEntries(
      VARIANTS.map((variant) => [
        variant,
        Object.fromEntries(
          size.publishers.map((p) => [p, summarizeRuns(samples.get(`${variant}:${p}`)!)]),
        ),
      ]),
    ) as AtomicPublishData['rates'];
    const at = size.publishers.includes(16) ? 16 : size.publishers[size.publishers.length - 1];
    const share = (shape: 'message' | 'business', p: number, ours: Variant = `${shape}-ours`) =>
      rates[ours][p].median / rates[`${shape}-ceiling`][p].median;
    const percent = (ratio: number) => `${Math.round(ratio * 100)}%`;
    const table = (shape: 'message' | 'business', title: string) => {
      const variants = VARIANTS.filter((v) => v.startsWith(`${shape}-`));
      // With a business row, the library's SQL sent by bare pg splits the gap in two.
      const sqlShare = (p: number) =>
        rates['business-sql'][p].median / rates['business-ceiling'][p].median;
      const split = shape === 'business';
      const unawaited = shape === 'message';
      return {
        title,
        head: [
          'Publishers',
          ...variants.map((v) => LABELS[v]),
          ...(split ? ["library's SQL / ceiling"] : []),
          unawaited ? 'ours awaited / ceiling' : 'ours / ceiling',
          ...(unawaited ? ['ours not awaited / ceiling'] : []),
        ],
        rows: size.publishers.map((p) => [
          String(p),
          ...variants.map((v) => formatRuns(rates[v][p], formatCount)),
          ...(split ? [percent(sqlShare(p))] : []),
          percent(share(shape, p)),
          ...(unawaited ? [percent(share(shape, p, 'message-ours-unawaited'))] : []),
        ]),
      };
    };
    const target = (
      shape: 'message' | 'business',
      what: string,
      ours: Variant = `${shape}-ours`,
    ) => ({
      target: `At ${at} publishers, ≥ 80% of the plain-INSERT ceiling (${what})`,
      measured:
        `${formatCount(rates[ours][at].median)}/s vs ` +
        `${formatCount(rates[`${shape}-ceiling`][at].median)}/s = ` +
        percent(share(shape, at, ours)),
      met: share(shape, at, ours) >= 0.8,
    });
    return {
      scenario: this.name,
      title: this.title,
      method: [
        'Each publisher is a loop that commits one transaction after another for ' +
          `${size.seconds} s; publishers run concurrently, each on its own pooled connection ` +
          '(all connections opened before timing). No consumer runs; the group is subscribed.',
        'Message only, as the issue words it ("a plain INSERT of the same row"): the ceiling is ' +
          'one INSERT of the message row with the columns the library writes, committed on its ' +
          "own; the NOTIFY baseline adds the library's wake-up hint with `pg_notify` in that " +
          "same statement's transaction (what pg-boss and graphile-worker do); ours is " +
          '`host.run(() => lastValueFrom(client.emit(...)))` with `PostgresTransactionHost`, ' +
          'and `host.run(async () => { client.emit(...) })`, the emit not awaited (as Nest code ' +
          'usually emits), which the library sends with BEGIN and COMMIT in one round trip.',
        'Business row + message, the shape atomic publish exists for: `BEGIN`, INSERT into ' +
          'business, INSERT of the message row, `COMMIT`; the NOTIFY baseline adds ' +
          '`SELECT pg_notify(...)` before `COMMIT`; ours runs `host.query(INSERT business)` and ' +
          '`client.emit(...)` inside `host.run`. Ours sends its wake-up NOTIFY after the commit, ' +
          'coalesced, from a separate connection, and its BEGIN with its first statement (one ' +
          'round trip fewer than the baselines, which send BEGIN on its own as code on bare `pg` ' +
          "does). Between them, the library's SQL without the " +
          "library: bare `pg` sends the same transaction with the library's prepared emit " +
          'statement (`INSERT … SELECT` from the subscriptions, `ON CONFLICT DO NOTHING`, ' +
          '`RETURNING` the groups) in place of the plain INSERT, and no NOTIFY.',
        'Every bare-`pg` variant sends its statements prepared (named), as the library sends its ' +
          'own and as `host.query` sends a repeated text, so the ceilings are the fastest way to ' +
          'send the same rows.',
        'One fresh database per run; tables truncated and a CHECKPOINT taken before each ' +
          'measurement; the order of variants rotates. After each measurement, committed ' +
          'transactions = message rows (= business rows) is checked.',
      ],
      tables: [
        table(
          'message',
          `Message only: transactions per second, median of ${context.runs} runs (min–max, ±half-range)`,
        ),
        table(
          'business',
          `Business row + message: transactions per second, median of ${context.runs} runs`,
        ),
        {
          title: 'CPU per committed transaction, ms: Node.js + PostgreSQL (medians)',
          head: ['Publishers', ...VARIANTS.map((v) => LABELS[v])],
          rows: size.publishers.map((p) => [
            String(p),
            ...VARIANTS.map((v) => {
              const runs = cpu.get(`${v}:${p}`)!;
              const node = median(runs.map(([n]) => n));
              const postgres = median(runs.map(([, pgMs]) => pgMs));
              return `${node.toFixed(3)} + ${Number.isNaN(postgres) ? 'n/a' : postgres.toFixed(3)}`;
            }),
          ]),
        },
      ],
      targets: [
        target('message', 'message only, emit awaited'),
        target('message', 'message only, emit not awaited', 'message-ours-unawaited'),
        target('business', 'business row + message'),
      ],
      notes: [
        consistent
          ? 'In every measurement, committed transactions = message rows (= business rows), and ' +
            "each variant's rows were written by its own code."
          : 'ROW COUNTS DID NOT MATCH the committed transactions in at least one measurement.',
      ],
      data: { rates, consistent },
    };
  },
};
