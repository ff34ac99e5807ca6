// Where nestjs-pg-transport spends its time, for docs/benchmarks.md: per-statement counts and
// times from pg_stat_statements, WAL flushes per message, and a V8 profile of this process.
// Runs on a throwaway PostgreSQL (fsync on) started with pg_stat_statements preloaded.
import { startThrowawayPostgres } from '#throwaway-postgres';
import { migrate } from '../lib/index.js';
import { quietNestLogs } from './support/bench-logger.js';
import { profileCpu, type CpuBreakdown } from './support/cpu-profile.js';
import { drainWithStatements, type SavepointMode } from './support/statement-floor.js';
import { inFreshDatabase, query } from './support/database.js';
import { Counter, emitRange, sleep, waitForCommittedRows } from './support/harness.js';
import { ChildConsumer } from './support/child-consumer.js';
import { TRANSPORT } from './support/contenders.js';
import { sendPaced, sendSparse } from './scenarios/latency.js';
import { formatCount, renderTable, type BenchScale } from './support/report.js';
import { nowMs, summarizeLatencies } from './support/stats.js';
import {
  insertTransportBacklog,
  startTransportConsumer,
  transportContender,
} from './support/transport-contender.js';
import { createBusinessTable } from './support/workload.js';

const scale = (process.env.BENCH_SCALE ?? 'full') as BenchScale;
const SIZES = {
  tiny: { messages: 100, backlog: 200, warmup: 20, loadSeconds: 0.3 },
  full: { messages: 5_000, backlog: 20_000, warmup: 200, loadSeconds: 5 },
};
const size = SIZES[scale];

interface StatementRow {
  query: string;
  calls: string;
  total_exec_time: number;
}

interface Observed {
  readonly label: string;
  readonly messages: number;
  readonly wallMs: number;
  readonly statements: StatementRow[];
  readonly walBytes: number;
  readonly walFsyncs: number;
  readonly cpu: CpuBreakdown;
}

async function resetStatistics(url: string): Promise<string> {
  await query(url, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  await query(url, 'SELECT pg_stat_statements_reset()');
  await query(url, "SELECT pg_stat_reset_shared('io')").catch(() =>
    query(url, "SELECT pg_stat_reset_shared('wal')"),
  );
  const [{ lsn }] = await query<{ lsn: string }>(url, 'SELECT pg_current_wal_lsn() AS lsn');
  return lsn;
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

async function collect(
  url: string,
  label: string,
  messages: number,
  startLsn: string,
  wallMs: number,
  cpu: CpuBreakdown,
): Promise<Observed> {
  // Backends report I/O statistics when they exit or go idle; the pools are closed by now.
  await sleep(1500);
  const statements = await query<StatementRow>(
    url,
    `SELECT regexp_replace(query, '\\s+', ' ', 'g') AS query, calls, total_exec_time
     FROM pg_stat_statements
     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND query NOT LIKE '%pg_stat%' AND query NOT LIKE '%count(*)::int AS n FROM business%'
     ORDER BY total_exec_time DESC`,
  );
  const [{ bytes }] = await query<{ bytes: string }>(
    url,
    'SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS bytes',
    [startLsn],
  );
  return {
    label,
    messages,
    wallMs,
    statements,
    walBytes: Number(bytes),
    walFsyncs: await walFsyncs(url),
    cpu,
  };
}

async function endToEnd(serverUrl: string): Promise<Observed> {
  return inFreshDatabase(serverUrl, async (db) => {
    await createBusinessTable(db.url);
    await migrate(db.url);
    const handled = new Counter();
    const consumer = await startTransportConsumer(db.url, { handled: () => handled.increment() });
    const producer = await transportContender().startProducer(db.url);
    const total = size.warmup + size.messages;
    await emitRange(producer, 1, size.warmup, 10);
    await handled.reach(size.warmup, 60_000, 'warm-up');
    await waitForCommittedRows(db.url, size.warmup, 60_000);
    const lsn = await resetStatistics(db.url);
    const start = nowMs();
    const { breakdown } = await profileCpu(async () => {
      await emitRange(producer, size.warmup + 1, total, 10);
      await handled.reach(total, 120_000, 'end to end');
      await waitForCommittedRows(db.url, total, 60_000);
    });
    const wallMs = nowMs() - start;
    await producer.close();
    await consumer.stop();
    return collect(db.url, 'end to end, 10 emitters', size.messages, lsn, wallMs, breakdown);
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
    const lsn = await resetStatistics(db.url);
    const start = nowMs();
    const { result: sent, breakdown } = await profileCpu(() =>
      sendPaced(producer, 21, 1000, size.loadSeconds),
    );
    await consumer.waitForHandled(sent.last, 120_000);
    const wallMs = nowMs() - start;
    await producer.close();
    await consumer.stop();
    const latencies = summarizeLatencies(
      consumer.samples.filter(([n]) => n > 20).map(([, ms]) => ms),
    );
    const observed = await collect(
      db.url,
      `paced 1,000 msg/s for ${size.loadSeconds} s, consumer in a child process ` +
        `(p50 ${latencies.p50.toFixed(1)} ms, p99 ${latencies.p99.toFixed(1)} ms; ` +
        'JavaScript CPU below is the producer process)',
      sent.last - 20,
      lsn,
      wallMs,
      breakdown,
    );
    return observed;
  });
}

async function backlog(serverUrl: string): Promise<Observed> {
  return inFreshDatabase(serverUrl, async (db) => {
    await createBusinessTable(db.url);
    await migrate(db.url);
    await insertTransportBacklog(db.url, size.backlog);
    await query(db.url, 'VACUUM ANALYZE nestjs_transport.messages');
    const lsn = await resetStatistics(db.url);
    const handled = new Counter();
    const start = nowMs();
    const { result: consumer, breakdown } = await profileCpu(async () => {
      const started = await startTransportConsumer(db.url, { handled: () => handled.increment() });
      await handled.reach(size.backlog, 300_000, 'backlog');
      await waitForCommittedRows(db.url, size.backlog, 60_000);
      return started;
    });
    const wallMs = nowMs() - start;
    await consumer.stop();
    return collect(
      db.url,
      `drain of ${formatCount(size.backlog)} rows`,
      size.backlog,
      lsn,
      wallMs,
      breakdown,
    );
  });
}

/**
 * The library's statement sequence replayed by plain pg loops on a drained backlog, with and
 * without per-message savepoints: what each round trip costs here.
 */
async function statementFloor(serverUrl: string): Promise<string> {
  const variants: Array<{ label: string; workers: number; mode: SavepointMode }> = [
    { label: 'library statements (3 round trips per message)', workers: 2, mode: 'library' },
    { label: 'SAVEPOINT/RELEASE merged (2 per message)', workers: 2, mode: 'merged' },
    { label: 'no savepoint (1 per message)', workers: 2, mode: 'none' },
    { label: 'library statements, 4 workers', workers: 4, mode: 'library' },
    { label: 'no savepoint, 4 workers', workers: 4, mode: 'none' },
  ];
  const rows: string[][] = [];
  for (const variant of variants) {
    const perSecond = await inFreshDatabase(serverUrl, async (db) => {
      await createBusinessTable(db.url);
      await migrate(db.url);
      await insertTransportBacklog(db.url, size.backlog);
      await query(db.url, 'VACUUM ANALYZE');
      const start = nowMs();
      const handled = await drainWithStatements(db.url, variant.workers, 10, variant.mode);
      if (handled !== size.backlog) throw new Error(`drained ${handled} of ${size.backlog}`);
      return (handled * 1000) / (nowMs() - start);
    });
    rows.push([variant.label, String(variant.workers), formatCount(perSecond)]);
  }
  return renderTable({
    title: `Statement floor: ${formatCount(size.backlog)} rows drained by plain pg loops, batches of 10`,
    head: ['Statements', 'workers', 'rows/s'],
    rows,
  });
}

function render(observed: Observed): string {
  const perMessage = (value: number) => (value / observed.messages).toFixed(3);
  const totalCalls = observed.statements.reduce((sum, s) => sum + Number(s.calls), 0);
  const totalTime = observed.statements.reduce((sum, s) => sum + s.total_exec_time, 0);
  return [
    `### ${observed.label}: ${formatCount((observed.messages * 1000) / observed.wallMs)} msg/s`,
    '',
    `Statements per message: ${perMessage(totalCalls)}; server execution time per message: ` +
      `${perMessage(totalTime)} ms; WAL per message: ${formatCount(observed.walBytes / observed.messages)} bytes; ` +
      `WAL fsyncs per message: ${perMessage(observed.walFsyncs)}; JavaScript CPU per message: ` +
      `${perMessage(observed.cpu.totalMs)} ms.`,
    '',
    renderTable({
      title: 'Statements (pg_stat_statements), by total execution time',
      head: ['Statement', 'calls/msg', 'mean ms', 'share of time'],
      rows: observed.statements
        .slice(0, 12)
        .map((s) => [
          `\`${s.query.length > 110 ? `${s.query.slice(0, 107)}...` : s.query}\``,
          perMessage(Number(s.calls)),
          (s.total_exec_time / Number(s.calls)).toFixed(3),
          `${Math.round((s.total_exec_time / totalTime) * 100)}%`,
        ]),
    }),
    '',
    renderTable({
      title: 'JavaScript CPU of this process (V8 sampling profile), by package',
      head: ['Where', 'ms', 'share'],
      rows: observed.cpu.byArea
        .slice(0, 10)
        .map((a) => [a.area, a.ms.toFixed(0), `${Math.round(a.share * 100)}%`]),
    }),
    '',
    renderTable({
      title: 'Hottest functions (self time)',
      head: ['Function', 'Where', 'share'],
      rows: observed.cpu.topFunctions
        .slice(0, 10)
        .map((f) => [`\`${f.fn}\``, f.area, `${Math.round(f.share * 100)}%`]),
    }),
  ].join('\n');
}

quietNestLogs();
const server = await startThrowawayPostgres({
  settings: {
    shared_preload_libraries: 'pg_stat_statements',
    'pg_stat_statements.track': 'all',
    track_io_timing: 'on',
  },
});
try {
  const [{ version }] = await query<{ version: string }>(
    server.url,
    "SELECT current_setting('server_version') AS version",
  );
  console.log(`Profile on a throwaway PostgreSQL ${version} (fsync on).\n`);
  console.log(render(await endToEnd(server.url)));
  console.log('');
  console.log(render(await backlog(server.url)));
  console.log('');
  console.log(render(await pacedLoad(server.url)));
  console.log('');
  // On DATABASE_URL when given, so the floor is measured on the same server as the benchmarks.
  console.log(await statementFloor(process.env.DATABASE_URL ?? server.url));
} finally {
  await server.destroy();
}
