// Where nestjs-pg-transport spends its time, for docs/benchmarks.md: per-statement counts and
// times from pg_stat_statements, WAL flushes and CPU per message, and a V8 profile of this
// process. Runs on a throwaway PostgreSQL (fsync on) started with pg_stat_statements preloaded;
// the statement floor at the end runs on DATABASE_URL when it is set.
//   npm run build && node dist/bench/profile.js        (BENCH_SCALE=tiny for a quick look)
//   node dist/bench/profile.js floor backlog            only these workloads
import { startThrowawayPostgres } from '#throwaway-postgres';
import { lastValueFrom } from 'rxjs';
import { ClientPostgres, migrate, PostgresTransactionHost } from '../lib/index.js';
import { measureDrain } from './scenarios/backlog-drain.js';
import { sendPaced, sendSparse } from './scenarios/latency.js';
import { quietNestLogs } from './support/bench-logger.js';
import { ChildConsumer } from './support/child-consumer.js';
import { BENCH_PATTERN } from './support/contender.js';
import { TRANSPORT } from './support/contenders.js';
import { profileCpu, type CpuBreakdown } from './support/cpu-profile.js';
import { benchPool, inFreshDatabase, query } from './support/database.js';
import { Counter, emitRange, waitForCommittedRows } from './support/harness.js';
import { formatCount, renderTable, type BenchScale } from './support/report.js';
import { CpuMeter, type CpuUsage } from './support/resources.js';
import { statementFloorContender, type StatementFloorSettings } from './support/statement-floor.js';
import { nowMs, summarizeLatencies } from './support/stats.js';
import {
  BENCH_GROUP,
  insertTransportBacklog,
  startTransportConsumer,
} from './support/transport-contender.js';
import { createBusinessTable, INSERT_BUSINESS_ROW } from './support/workload.js';

const scale = (process.env.BENCH_SCALE ?? 'full') as BenchScale;
const SIZES = {
  tiny: { messages: 100, backlog: 200, warmup: 20, seconds: 0.3 },
  full: { messages: 5_000, backlog: 20_000, warmup: 200, seconds: 5 },
};
const size = SIZES[scale];
/** Workloads to run: end-to-end, backlog, paced, atomic, floor; all when none is named. */
const only = process.argv.slice(2);

interface StatementRow {
  query: string;
  calls: string;
  total_exec_time: number;
  total_plan_time: number;
}

interface Observed {
  readonly label: string;
  readonly messages: number;
  readonly usage: CpuUsage;
  readonly statements: StatementRow[];
  readonly walBytes: number;
  readonly walFsyncs: number;
  readonly profile: CpuBreakdown;
}

/** WAL fsyncs since the reset: pg_stat_io on PostgreSQL 18, pg_stat_wal before it. */
async function walFsyncs(url: string): Promise<number> {
  try {
    const [row] = await query<{ n: string }>(
      url,
      "SELECT coalesce(sum(fsyncs), 0) AS n FROM pg_stat_io WHERE object = 'wal'",
    );
    return Number(row.n);
  } catch {
    const [row] = await query<{ n: string }>(url, 'SELECT wal_sync AS n FROM pg_stat_wal');
    return Number(row.n);
  }
}

/**
 * Resets the statistics, runs `timed` under the CPU meter and the V8 profiler, then `after`
 * (closing pools, so backends report their I/O statistics), then reads what happened.
 */
async function observe(
  url: string,
  label: string,
  timed: () => Promise<number>,
  after: () => Promise<void>,
): Promise<Observed> {
  await query(url, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  await query(url, 'SELECT pg_stat_statements_reset()');
  await query(url, "SELECT pg_stat_reset_shared('io')").catch(() =>
    query(url, "SELECT pg_stat_reset_shared('wal')"),
  );
  const [{ lsn }] = await query<{ lsn: string }>(url, 'SELECT pg_current_wal_lsn() AS lsn');
  const meter = await CpuMeter.start(url);
  const { result: messages, breakdown } = await profileCpu(timed);
  const usage = meter.stop();
  await after();
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const statements = await query<StatementRow>(
    url,
    `SELECT regexp_replace(query, '\\s+', ' ', 'g') AS query, calls, total_exec_time,
            total_plan_time
     FROM pg_stat_statements
     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND query NOT LIKE '%pg_stat%' AND query NOT LIKE '%count(*)::int AS n FROM business%'
       AND query NOT LIKE '%pg_backend_pid%'
     ORDER BY total_exec_time + total_plan_time DESC`,
  );
  const [{ bytes }] = await query<{ bytes: string }>(
    url,
    'SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS bytes',
    [lsn],
  );
  return {
    label,
    messages,
    usage,
    statements,
    walBytes: Number(bytes),
    walFsyncs: await walFsyncs(url),
    profile: breakdown,
  };
}

async function endToEnd(serverUrl: string): Promise<Observed> {
  return inFreshDatabase(serverUrl, async (db) => {
    await createBusinessTable(db.url);
    await migrate(db.url);
    const handled = new Counter();
    const consumer = await startTransportConsumer(db.url, { handled: () => handled.increment() });
    const producer = await TRANSPORT.startProducer(db.url);
    const total = size.warmup + size.messages;
    await emitRange(producer, 1, size.warmup, 10);
    await handled.reach(size.warmup, 60_000, 'warm-up');
    await waitForCommittedRows(db.url, size.warmup, 60_000);
    return observe(
      db.url,
      'End to end, 10 emitters, producer and consumer in this process',
      async () => {
        await emitRange(producer, size.warmup + 1, total, 10);
        await handled.reach(total, 120_000, 'end to end');
        await waitForCommittedRows(db.url, total, 60_000);
        return size.messages;
      },
      async () => {
        await producer.close();
        await consumer.stop();
      },
    );
  });
}

async function backlog(serverUrl: string): Promise<Observed> {
  return inFreshDatabase(serverUrl, async (db) => {
    await createBusinessTable(db.url);
    await migrate(db.url);
    await insertTransportBacklog(db.url, size.backlog);
    await query(db.url, 'VACUUM ANALYZE');
    const handled = new Counter();
    let consumer: { stop(): Promise<void> } | undefined;
    return observe(
      db.url,
      `Drain of ${formatCount(size.backlog)} rows, consumer in this process`,
      async () => {
        consumer = await startTransportConsumer(db.url, { handled: () => handled.increment() });
        await handled.reach(size.backlog, 300_000, 'backlog');
        await waitForCommittedRows(db.url, size.backlog, 60_000);
        return size.backlog;
      },
      async () => consumer?.stop(),
    );
  });
}

/** The latency scenario's load phase: 1,000 msg/s, paced, with the consumer in a child process. */
async function pacedLoad(serverUrl: string): Promise<Observed> {
  return inFreshDatabase(serverUrl, async (db) => {
    await createBusinessTable(db.url);
    await migrate(db.url);
    const consumer = await ChildConsumer.start({ contender: TRANSPORT.name, url: db.url });
    const producer = await TRANSPORT.startProducer(db.url);
    await sendSparse(producer, 1, 20);
    await consumer.waitForHandled(20, 60_000);
    const observed = await observe(
      db.url,
      `1,000 msg/s for ${size.seconds} s, consumer in a child process (its CPU is not in the ` +
        'Node.js figure)',
      async () => {
        const sent = await sendPaced(producer, 21, 1000, size.seconds);
        await consumer.waitForHandled(sent.last, 120_000);
        return sent.last - 20;
      },
      async () => {
        await producer.close();
        await consumer.stop();
      },
    );
    const latency = summarizeLatencies(
      consumer.samples.filter(([n]) => n > 20).map(([, ms]) => ms),
    );
    return {
      ...observed,
      label: `${observed.label}; p50 ${latency.p50.toFixed(2)} ms, p99 ${latency.p99.toFixed(2)} ms`,
    };
  });
}

/** Scenario 4's business-row shape with 16 publishers: what one atomic publish costs. */
async function atomicPublish(serverUrl: string): Promise<Observed> {
  return inFreshDatabase(serverUrl, async (db) => {
    await createBusinessTable(db.url);
    await migrate(db.url);
    await query(
      db.url,
      `INSERT INTO nestjs_transport.subscriptions (pattern, kind, group_name)
       VALUES ($1, 'event', $2)`,
      [BENCH_PATTERN, BENCH_GROUP],
    );
    const pool = benchPool(db.url, 16);
    const host = new PostgresTransactionHost(pool);
    const client = new ClientPostgres({ connectionString: db.url, migrationsRun: false });
    await client.connect();
    let next = 1;
    const publish = () =>
      host.run(async () => {
        const n = next++;
        await host.query(INSERT_BUSINESS_ROW, [n]);
        await lastValueFrom(client.emit(BENCH_PATTERN, { n, sentAt: 0 }));
      });
    for (let i = 0; i < 200; i++) await publish();
    return observe(
      db.url,
      `Atomic publish, 16 publishers, business row + emit in \`host.run\`, ${size.seconds} s`,
      async () => {
        let committed = 0;
        const deadline = nowMs() + size.seconds * 1000;
        await Promise.all(
          Array.from({ length: 16 }, async () => {
            while (nowMs() < deadline) {
              await publish();
              committed++;
            }
          }),
        );
        return committed;
      },
      async () => {
        await client.close();
        await pool.end();
      },
    );
  });
}

/**
 * The library's statement sequence replayed by plain pg loops on a drained backlog, with and
 * without per-message savepoints: what each round trip costs here.
 */
async function statementFloor(serverUrl: string): Promise<string> {
  const separate = 'SAVEPOINT, INSERT, RELEASE: 3 round trips per message';
  const merged = 'RELEASE; SAVEPOINT merged: 2 per message';
  const none = 'no savepoint: 1 per message';
  const variants: Array<StatementFloorSettings & { label: string }> = [
    { label: merged, workers: 2, batchSize: 10, mode: 'merged' },
    { label: none, workers: 2, batchSize: 10, mode: 'none' },
    { label: separate, workers: 4, batchSize: 50, mode: 'separate' },
    { label: merged, workers: 4, batchSize: 50, mode: 'merged' },
    { label: none, workers: 4, batchSize: 50, mode: 'none' },
  ];
  const rows: string[][] = [];
  for (const variant of variants) {
    const run = await measureDrain(serverUrl, statementFloorContender(variant), size.backlog);
    if (run.rows !== run.expected) throw new Error(`drained ${run.rows} of ${run.expected}`);
    const perSecond = run.perSecond;
    rows.push([
      variant.label,
      String(variant.workers),
      String(variant.batchSize),
      formatCount(perSecond),
    ]);
  }
  return renderTable({
    title:
      `Statement floor: ${formatCount(size.backlog)} rows drained by plain pg loops sending ` +
      "the library's claim, settle and commit around the handler INSERT",
    head: ['Statements', 'workers', 'batch', 'rows/s'],
    rows,
  });
}

function render(observed: Observed): string {
  const { messages, usage, statements } = observed;
  const per = (value: number, digits = 3) => (value / messages).toFixed(digits);
  const calls = statements.reduce((sum, s) => sum + Number(s.calls), 0);
  const exec = statements.reduce((sum, s) => sum + s.total_exec_time, 0);
  const plan = statements.reduce((sum, s) => sum + s.total_plan_time, 0);
  const server = exec + plan;
  return [
    `### ${observed.label}: ${formatCount((messages * 1000) / usage.wallMs)} msg/s`,
    '',
    `Per message: ${per(calls, 2)} statements; server execution ${per(exec)} ms + planning ` +
      `${per(plan)} ms; PostgreSQL CPU ${per(usage.postgresMs)} ms; Node.js CPU ` +
      `${per(usage.nodeMs)} ms; WAL ${formatCount(observed.walBytes / messages)} bytes and ` +
      `${per(observed.walFsyncs)} fsyncs.`,
    '',
    renderTable({
      title: 'Statements (pg_stat_statements), by execution + planning time',
      head: ['Statement', 'calls/msg', 'mean exec ms', 'mean plan ms', 'share of server time'],
      rows: statements
        .slice(0, 12)
        .map((s) => [
          `\`${s.query.length > 100 ? `${s.query.slice(0, 97)}...` : s.query}\``,
          per(Number(s.calls)),
          (s.total_exec_time / Number(s.calls)).toFixed(3),
          (s.total_plan_time / Number(s.calls)).toFixed(3),
          `${Math.round(((s.total_exec_time + s.total_plan_time) / server) * 100)}%`,
        ]),
    }),
    '',
    renderTable({
      title: 'JavaScript CPU of this process (V8 sampling profile), by package',
      head: ['Where', 'ms', 'share'],
      rows: observed.profile.byArea
        .slice(0, 10)
        .map((a) => [a.area, a.ms.toFixed(0), `${Math.round(a.share * 100)}%`]),
    }),
    '',
    renderTable({
      title: 'Hottest functions (self time)',
      head: ['Function', 'Where', 'share'],
      rows: observed.profile.topFunctions
        .slice(0, 8)
        .map((f) => [`\`${f.fn}\``, f.area, `${Math.round(f.share * 100)}%`]),
    }),
  ].join('\n');
}

quietNestLogs();
const server = await startThrowawayPostgres({
  settings: {
    shared_preload_libraries: 'pg_stat_statements',
    'pg_stat_statements.track': 'all',
    'pg_stat_statements.track_planning': 'on',
    track_io_timing: 'on',
  },
});
try {
  const [{ version }] = await query<{ version: string }>(
    server.url,
    "SELECT current_setting('server_version') AS version",
  );
  console.log(`## Profile (throwaway PostgreSQL ${version}, fsync on, ${scale} scale)\n`);
  const workloads = { 'end-to-end': endToEnd, backlog, paced: pacedLoad, atomic: atomicPublish };
  for (const [name, workload] of Object.entries(workloads)) {
    if (only.length === 0 || only.includes(name))
      console.log(`${render(await workload(server.url))}\n`);
  }
  if (only.length === 0 || only.includes('floor')) {
    console.log(await statementFloor(process.env.DATABASE_URL ?? server.url));
  }
} finally {
  await server.destroy();
}
