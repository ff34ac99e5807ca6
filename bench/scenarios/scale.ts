import { ChildConsumer } from '../support/child-consumer.js';
import { TRANSPORT } from '../support/contenders.js';
import { inFreshDatabase, query } from '../support/database.js';
import {
  formatCount,
  formatRatio,
  formatRuns,
  type BenchContext,
  type Scenario,
  type ScenarioResult,
} from '../support/report.js';
import { median, nowMs, summarizeRuns, type RunSummary } from '../support/stats.js';
import { insertTransportBacklog } from '../support/transport-contender.js';
import { countBusinessRows, createBusinessTable } from '../support/workload.js';

const SIZES = {
  tiny: { small: 200, large: 2_000, window: 500, checkpointEvery: 100, rssIntervalMs: 100 },
  full: {
    small: 20_000,
    large: 1_000_000,
    window: 100_000,
    checkpointEvery: 10_000,
    rssIntervalMs: 1000,
  },
};
type Size = (typeof SIZES)['full'];

/** The claim's row search (its WHERE and ORDER BY), read-only: what the claim does before it locks. */
const PENDING_SCAN = `
  EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
  SELECT id FROM nestjs_transport.messages
  WHERE recipient = 'bench' AND consumed_at IS NULL AND dead_at IS NULL AND run_at <= now()
    AND (locked_until IS NULL OR locked_until <= now())
  ORDER BY run_at, id LIMIT 10`;

export interface ScaleRun {
  readonly smallPerSecond: number;
  readonly firstWindowPerSecond: number;
  readonly lastWindowPerSecond: number;
  readonly largePerSecond: number;
  readonly insertPerSecond: number;
  /** Consumer RSS samples (MB), one per interval, over the whole large drain. */
  readonly rssMb: number[];
  /** The consumer's heap in use after a full garbage collection (MB), a quarter in and at the end. */
  readonly liveHeapMb: { readonly quarter: number; readonly end: number };
  /** EXPLAIN ANALYZE of the pending-row search: full table, and with 90% consumed. */
  readonly scanFull: ScanPlan;
  readonly scanLate: ScanPlan;
  readonly autovacuums: number;
  readonly rows: number;
  readonly distinct: number;
  readonly expected: number;
}

export interface ScanPlan {
  readonly executionMs: number;
  readonly sharedHit: number;
  readonly sharedRead: number;
  readonly node: string;
}

export interface ScaleData {
  readonly runs: ScaleRun[];
  readonly small: RunSummary;
  readonly firstWindow: RunSummary;
  readonly lastWindow: RunSummary;
  readonly rss: {
    min: number;
    median: number;
    max: number;
    firstQuarter: number;
    secondQuarter: number;
    lastQuarter: number;
  };
  readonly liveHeapMb: { readonly quarter: number; readonly end: number };
}

async function explainScan(url: string): Promise<ScanPlan> {
  const [row] = await query<{ 'QUERY PLAN': any }>(url, PENDING_SCAN);
  const [plan] = row['QUERY PLAN'];
  let node = plan.Plan;
  while (node.Plans && node['Node Type'] === 'Limit') node = node.Plans[0];
  return {
    executionMs: plan['Execution Time'],
    sharedHit: plan.Plan['Shared Hit Blocks'] ?? 0,
    sharedRead: plan.Plan['Shared Read Blocks'] ?? 0,
    node: `${node['Node Type']}${node['Index Name'] ? ` on ${node['Index Name']}` : ''}`,
  };
}

/** Messages per second between two checkpoints of a child consumer. */
function rateBetween(
  checkpoints: ReadonlyArray<{ handled: number; at: number }>,
  from: number,
  to: number,
): number {
  const start = checkpoints.find((c) => c.handled === from);
  const end = checkpoints.find((c) => c.handled === to);
  if (!start || !end) throw new Error(`no checkpoint at ${from} or ${to}`);
  return ((to - from) * 1000) / (end.at - start.at);
}

/** The quarter of the drain after which the live heap is first measured. */
const quarterOf = (rows: number) => Math.round(rows / 4);

/** Drains `rows` pending messages with a consumer in its own process. */
async function drain(
  url: string,
  rows: number,
  size: Size,
  whenMostlyDone?: () => Promise<void>,
): Promise<ChildConsumer> {
  const consumer = await ChildConsumer.start({
    contender: TRANSPORT.name,
    url,
    checkpointEvery: size.checkpointEvery,
    rssIntervalMs: size.rssIntervalMs,
    liveHeapAt: whenMostlyDone ? [quarterOf(rows), rows] : undefined,
  });
  try {
    if (whenMostlyDone) {
      await consumer.waitForHandled(Math.round(rows * 0.9), 3_600_000);
      await whenMostlyDone();
    }
    await consumer.waitForHandled(rows, 3_600_000);
  } finally {
    await consumer.stop();
  }
  return consumer;
}

async function measure(serverUrl: string, size: Size): Promise<ScaleRun> {
  const smallPerSecond = await inFreshDatabase(serverUrl, async (db) => {
    await createBusinessTable(db.url);
    await TRANSPORT.prepare(db.url);
    await insertTransportBacklog(db.url, size.small);
    await query(db.url, 'VACUUM ANALYZE');
    const consumer = await drain(db.url, size.small, size);
    return rateBetween(consumer.checkpoints, 1, size.small);
  });
  return inFreshDatabase(serverUrl, async (db) => {
    await createBusinessTable(db.url);
    await TRANSPORT.prepare(db.url);
    const insertStart = nowMs();
    await insertTransportBacklog(db.url, size.large, size.window);
    const insertPerSecond = (size.large * 1000) / (nowMs() - insertStart);
    await query(db.url, 'VACUUM ANALYZE');
    const scanFull = await explainScan(db.url);
    let scanLate: ScanPlan | undefined;
    const consumer = await drain(db.url, size.large, size, async () => {
      scanLate = await explainScan(db.url);
    });
    const [{ autovacuums }] = await query<{ autovacuums: number }>(
      db.url,
      `SELECT autovacuum_count::int AS autovacuums FROM pg_stat_user_tables
       WHERE schemaname = 'nestjs_transport' AND relname = 'messages'`,
    );
    const counted = await countBusinessRows(db.url);
    return {
      smallPerSecond,
      firstWindowPerSecond: rateBetween(consumer.checkpoints, 1, size.window),
      lastWindowPerSecond: rateBetween(consumer.checkpoints, size.large - size.window, size.large),
      largePerSecond: rateBetween(consumer.checkpoints, 1, size.large),
      insertPerSecond,
      rssMb: consumer.rss.map((s) => s.rss / 2 ** 20),
      liveHeapMb: {
        quarter: liveHeapMbAt(consumer, quarterOf(size.large)),
        end: liveHeapMbAt(consumer, size.large),
      },
      scanFull,
      scanLate: scanLate!,
      autovacuums,
      ...counted,
      expected: size.large,
    };
  });
}

function liveHeapMbAt(consumer: ChildConsumer, handled: number): number {
  const sample = consumer.liveHeap.find((s) => s.handled === handled);
  if (!sample) throw new Error(`the consumer reported no live heap at ${handled} handled`);
  return sample.liveHeap / 2 ** 20;
}

/** The median of the `index`th of four equal parts of `samples` (0 = first). */
export function quarterMedian(samples: readonly number[], index: 0 | 1 | 3): number {
  const n = Math.max(1, Math.floor(samples.length / 4));
  const start =
    index === 3 ? Math.max(0, samples.length - n) : Math.min(index * n, samples.length - 1);
  return median(samples.slice(start, start + n));
}

export const scaleScenario: Scenario<ScaleData> = {
  name: 'scale',
  title: '6. Scale: a backlog of 1,000,000 rows',

  async run(context: BenchContext): Promise<ScenarioResult<ScaleData>> {
    const size = SIZES[context.scale];
    const runs: ScaleRun[] = [];
    for (let run = 0; run < context.runs; run++) {
      const result = await measure(context.serverUrl, size);
      runs.push(result);
      context.log(
        `scale run ${run + 1}/${context.runs}: small ${formatCount(result.smallPerSecond)}/s, ` +
          `first window ${formatCount(result.firstWindowPerSecond)}/s, last window ` +
          `${formatCount(result.lastWindowPerSecond)}/s, RSS ${Math.min(...result.rssMb).toFixed(0)}–` +
          `${Math.max(...result.rssMb).toFixed(0)} MB`,
      );
    }
    const rss = {
      min: median(runs.map((r) => Math.min(...r.rssMb))),
      median: median(runs.map((r) => median(r.rssMb))),
      max: median(runs.map((r) => Math.max(...r.rssMb))),
      firstQuarter: median(runs.map((r) => quarterMedian(r.rssMb, 0))),
      secondQuarter: median(runs.map((r) => quarterMedian(r.rssMb, 1))),
      lastQuarter: median(runs.map((r) => quarterMedian(r.rssMb, 3))),
    };
    const liveHeapMb = {
      quarter: median(runs.map((r) => r.liveHeapMb.quarter)),
      end: median(runs.map((r) => r.liveHeapMb.end)),
    };
    const data: ScaleData = {
      runs,
      small: summarizeRuns(runs.map((r) => r.smallPerSecond)),
      firstWindow: summarizeRuns(runs.map((r) => r.firstWindowPerSecond)),
      lastWindow: summarizeRuns(runs.map((r) => r.lastWindowPerSecond)),
      rss,
      liveHeapMb,
    };
    const lastRatio = data.lastWindow.median / data.small.median;
    // Growth is judged from the second quarter on: the first holds the process's warm-up (the
    // heap growing to the size its collector settles on), which a backlog of any size pays once.
    const growth = rss.lastQuarter / rss.secondQuarter;
    const heapGrowthPer100k =
      ((liveHeapMb.end - liveHeapMb.quarter) * 100_000) / (size.large - quarterOf(size.large));
    const mb = (value: number) => `${value.toFixed(0)} MB`;
    const plan = (p: ScanPlan) =>
      `${p.node}, ${p.executionMs.toFixed(3)} ms, ${p.sharedHit + p.sharedRead} buffers`;
    const w = formatCount(size.window);
    return {
      scenario: this.name,
      title: this.title,
      method: [
        `${formatCount(size.large)} messages are inserted in chunks of ${w} rows ` +
          '(`INSERT … SELECT … FROM generate_series`), then `VACUUM ANALYZE`; a consumer with the ' +
          'library defaults, in its own process, drains them with the handler of scenario 1.',
        `The consumer reports the time of its first handled message and of every ` +
          `${formatCount(size.checkpointEvery)}th; rates are between those points (process ` +
          `start-up excluded). For comparison, a ${formatCount(size.small)}-row table is drained ` +
          'the same way in the same run, in its own database.',
        `The consumer samples its own RSS (\`process.memoryUsage().rss\`) every ` +
          `${size.rssIntervalMs} ms. RSS is judged flat when the median of the last quarter of ` +
          'the samples is at most 1.1× that of the second quarter; the first quarter holds the ' +
          "process's warm-up and is reported beside them. A quarter of the way through and at " +
          'the end, the consumer (started with `--expose-gc`) runs a full garbage collection ' +
          'and reports the heap still in use: memory retained per message would show there.',
        "Autovacuum runs with the server's settings.",
        'The pending-row search of the claim (the SELECT part, without locking) is run with ' +
          '`EXPLAIN (ANALYZE, BUFFERS)` on the full table and again when 90% is consumed.',
      ],
      tables: [
        {
          title: `Throughput, median of ${context.runs} runs (min–max, ±half-range)`,
          head: ['Window', 'msg/s', 'vs small table'],
          rows: [
            [
              `${formatCount(size.small)}-row table, whole drain`,
              formatRuns(data.small, formatCount),
              '1.00×',
            ],
            [
              `${formatCount(size.large)} rows, first ${w}`,
              formatRuns(data.firstWindow, formatCount),
              formatRatio(data.firstWindow.median / data.small.median),
            ],
            [
              `${formatCount(size.large)} rows, last ${w}`,
              formatRuns(data.lastWindow, formatCount),
              formatRatio(lastRatio),
            ],
            [
              `${formatCount(size.large)} rows, whole drain`,
              formatRuns(summarizeRuns(runs.map((r) => r.largePerSecond)), formatCount),
              formatRatio(median(runs.map((r) => r.largePerSecond)) / data.small.median),
            ],
          ],
        },
        {
          title: 'Consumer memory over the large drain (medians over runs)',
          head: [
            'RSS min',
            'RSS median',
            'RSS max',
            'first quarter',
            'second quarter',
            'last quarter',
            'live heap, a quarter in → end',
            'samples per run',
          ],
          rows: [
            [
              mb(rss.min),
              mb(rss.median),
              mb(rss.max),
              mb(rss.firstQuarter),
              mb(rss.secondQuarter),
              mb(rss.lastQuarter),
              `${liveHeapMb.quarter.toFixed(1)} → ${liveHeapMb.end.toFixed(1)} MB`,
              runs.map((r) => r.rssMb.length).join(', '),
            ],
          ],
        },
        {
          title: 'Pending-row search, EXPLAIN ANALYZE (each run)',
          head: [
            'Run',
            'full table',
            '90% consumed',
            'autovacuums during the drain',
            'bulk insert rows/s',
          ],
          rows: runs.map((r, i) => [
            String(i + 1),
            plan(r.scanFull),
            plan(r.scanLate),
            String(r.autovacuums),
            formatCount(r.insertPerSecond),
          ]),
        },
      ],
      targets: [
        {
          target: `Consumer RSS flat over the ${formatCount(size.large)}-row backlog (last quarter ≤ 1.1× second quarter)`,
          measured:
            `${mb(rss.secondQuarter)} → ${mb(rss.lastQuarter)} (${formatRatio(growth)}); ` +
            `first quarter ${mb(rss.firstQuarter)} (last / first ${formatRatio(rss.lastQuarter / rss.firstQuarter)}); ` +
            `min ${mb(rss.min)}, max ${mb(rss.max)}; live heap ${liveHeapMb.quarter.toFixed(1)} → ` +
            `${liveHeapMb.end.toFixed(1)} MB (${heapGrowthPer100k >= 0 ? '+' : ''}${heapGrowthPer100k.toFixed(2)} MB per 100,000 messages)`,
          met: growth <= 1.1,
        },
        {
          target: 'Throughput does not collapse: last window ≥ 0.8× the small table',
          measured: `${formatCount(data.lastWindow.median)}/s vs ${formatCount(data.small.median)}/s = ${formatRatio(lastRatio)}`,
          met: lastRatio >= 0.8,
        },
      ],
      notes: runs.every((r) => r.rows === r.expected && r.distinct === r.expected)
        ? ['Exactly once: business rows = distinct messages = messages in every run.']
        : runs.map(
            (r, i) =>
              `Run ${i + 1}: ${r.rows} business rows, ${r.distinct} distinct, ${r.expected} messages.`,
          ),
      data,
    };
  },
};
