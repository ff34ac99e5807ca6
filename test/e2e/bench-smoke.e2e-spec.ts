// Runs every benchmark scenario on a tiny input: the benchmarks stay runnable, and their numbers
// stay sane. The measurements themselves come from `npm run bench` (see docs/benchmarks.md).
// The latency and scale scenarios fork dist/bench/support/consumer-process.js: build first.
import { describe, expect, it } from '@jest/globals';
import { atomicPublishScenario } from '../../bench/scenarios/atomic-publish.js';
import { backlogDrainScenario } from '../../bench/scenarios/backlog-drain.js';
import { endToEndScenario } from '../../bench/scenarios/end-to-end.js';
import { fanOutScenario } from '../../bench/scenarios/fan-out.js';
import { latencyScenario, sendPaced } from '../../bench/scenarios/latency.js';
import { quarterMedian, scaleScenario } from '../../bench/scenarios/scale.js';
import {
  TRANSPORT,
  TRANSPORT_TUNED,
  TRANSPORT_UNPREPARED,
} from '../../bench/support/contenders.js';
import { inFreshDatabase, query } from '../../bench/support/database.js';
import {
  renderResult,
  type BenchContext,
  type ScenarioResult,
} from '../../bench/support/report.js';
import { drainWithStatements } from '../../bench/support/statement-floor.js';
import { insertTransportBacklog } from '../../bench/support/transport-contender.js';
import { createBusinessTable } from '../../bench/support/workload.js';
import { migrate } from '../../lib/index.js';
import { compareBuilds, renderComparison } from '../../bench/support/compare.js';

const context: BenchContext = {
  serverUrl: process.env.DATABASE_URL!,
  scale: 'tiny',
  runs: 1,
  log: () => undefined,
};

/** Every scenario renders a titled section with its method, a table and its targets. */
function expectRendered(result: ScenarioResult): void {
  const text = renderResult(result);
  expect(text).toContain(`## ${result.title}`);
  expect(result.method.length).toBeGreaterThan(0);
  expect(result.tables.every((t) => t.rows.length > 0)).toBe(true);
  expect(result.targets.length).toBeGreaterThan(0);
  expect(text).not.toContain('NaN');
}

describe('benchmark scenarios on a tiny input', () => {
  it('end to end: every contender handles every message exactly once', async () => {
    const result = await endToEndScenario.run(context);
    expect(result.data.contenders.map((c) => c.name)).toEqual([
      TRANSPORT.name,
      TRANSPORT_TUNED.name,
      TRANSPORT_UNPREPARED.name,
      'pg-boss-polling',
      'pg-boss-notify',
      'graphile-worker',
    ]);
    for (const contender of result.data.contenders) {
      expect(contender.rate.median).toBeGreaterThan(0);
      for (const run of contender.runs) {
        expect(run.rows).toBe(run.expected);
        expect(run.distinct).toBe(run.expected);
        expect(run.cpu.nodeMs).toBeGreaterThan(0);
        // Read on every server; the test server runs without fsync, so flushes may be none.
        expect(run.wal?.bytes).toBeGreaterThan(0);
        expect(run.wal?.syncs).toBeGreaterThanOrEqual(0);
      }
    }
    expectRendered(result);
  });

  it('backlog: every contender drains the bulk-inserted backlog exactly once', async () => {
    const result = await backlogDrainScenario.run(context);
    expect(result.data.contenders.map((c) => c.name)).toEqual([
      TRANSPORT.name,
      TRANSPORT_TUNED.name,
      TRANSPORT_UNPREPARED.name,
      'statement-floor',
      'pg-boss-polling',
      'graphile-worker',
    ]);
    expect(result.notes.join('\n')).toMatch(/against the statement floor, .*: \d+\.\d+×/);
    for (const contender of result.data.contenders) {
      expect(contender.rate.median).toBeGreaterThan(0);
      expect(contender.runs[0].rows).toBe(100);
      expect(contender.runs[0].distinct).toBe(100);
    }
    expectRendered(result);
  });

  it('latency: a sample for every message, measured across processes', async () => {
    const result = await latencyScenario.run(context);
    for (const contender of result.data.contenders) {
      const [run] = contender.runs;
      expect(run.sparse.count).toBe(10);
      expect(run.load.count).toBe(300);
      expect(run.sparse.p50).toBeGreaterThan(0);
      expect(run.sparse.p99).toBeGreaterThanOrEqual(run.sparse.p50);
      expect(run.rows).toBe(run.expected);
    }
    expectRendered(result);
  });

  it('latency: a send that fails under load is counted, and the others go on', async () => {
    const sent: number[] = [];
    const producer = {
      emit: async ({ n }: { n: number }) => {
        if (n % 3 === 0) throw new Error('timeout exceeded when trying to connect');
        sent.push(n);
      },
      close: async () => undefined,
    };
    const load = await sendPaced(producer, 1, 1000, 0.03);
    expect(load.last).toBe(30);
    expect(load.failed).toBe(10);
    expect(sent).toHaveLength(20);
  });

  it('atomic publish: every committed transaction wrote its rows', async () => {
    const result = await atomicPublishScenario.run(context);
    expect(result.data.consistent).toBe(true);
    for (const byPublishers of Object.values(result.data.rates)) {
      expect(Object.keys(byPublishers)).toEqual(['1', '4']);
      for (const rate of Object.values(byPublishers)) expect(rate.median).toBeGreaterThan(0);
    }
    expectRendered(result);
  });

  it('fan-out: one LISTEN connection delivers to every subscriber', async () => {
    const result = await fanOutScenario.run(context);
    for (const layout of result.data.layouts) {
      const [run] = layout.runs;
      expect(run.listenConnections).toBe(1);
      expect(run.samePid).toBe(true);
      expect(run.deliveries).toBe(run.expected);
      expect(run.p50).toBeGreaterThan(0);
    }
    expect(result.targets[0].met).toBe(true);
    expectRendered(result);
  });

  it('scale: drains the large backlog exactly once and samples the consumer memory', async () => {
    const result = await scaleScenario.run(context);
    const [run] = result.data.runs;
    expect(run.rows).toBe(2_000);
    expect(run.distinct).toBe(2_000);
    expect(run.rssMb.length).toBeGreaterThan(0);
    expect(Math.min(...run.rssMb)).toBeGreaterThan(10);
    // The live heap after a full collection: measured at both points, and well under the RSS.
    for (const liveHeap of [run.liveHeapMb.quarter, run.liveHeapMb.end]) {
      expect(liveHeap).toBeGreaterThan(1);
      expect(liveHeap).toBeLessThan(Math.max(...run.rssMb));
    }
    expect(run.lastWindowPerSecond).toBeGreaterThan(0);
    expect(run.scanFull.node).toContain('messages_pending');
    expectRendered(result);
  });

  it('scale: judges RSS by the quarters of its samples', () => {
    const samples = [10, 20, 30, 40, 50, 60, 70, 80, 90];
    expect(quarterMedian(samples, 0)).toBe(15);
    expect(quarterMedian(samples, 1)).toBe(35);
    expect(quarterMedian(samples, 3)).toBe(85);
    expect(quarterMedian([7], 1)).toBe(7);
  });

  it('compare builds: this build against a built checkout, every workload, rows exact', async () => {
    // The other checkout is this one's own build, in dist/.
    const compared = await compareBuilds({
      serverUrl: context.serverUrl,
      otherRoot: process.cwd(),
      workloads: ['publish', 'drain', 'isolated-drain'],
      rounds: 1,
      seconds: 0.2,
      rows: 60,
      log: () => undefined,
    });
    expect(compared.map((c) => c.workload)).toHaveLength(5);
    for (const { mine, other } of compared) {
      expect(mine).toHaveLength(1);
      expect(other).toHaveLength(1);
      expect(mine[0]).toBeGreaterThan(0);
      expect(other[0]).toBeGreaterThan(0);
    }
    const table = renderComparison(compared, 'before');
    expect(table).toContain('| Workload | this build, median | before, median |');
    expect(table).not.toContain('NaN');
  });

  it('statement floor: plain pg loops drain the backlog in every savepoint mode', async () => {
    for (const mode of ['separate', 'merged', 'none'] as const) {
      const handled = await inFreshDatabase(context.serverUrl, async (db) => {
        await createBusinessTable(db.url);
        await migrate(db.url);
        await insertTransportBacklog(db.url, 50);
        const drained = await drainWithStatements(db.url, 2, 10, mode);
        const [{ n }] = await query<{ n: number }>(
          db.url,
          'SELECT count(*)::int AS n FROM business',
        );
        expect(n).toBe(50);
        return drained;
      });
      expect(handled).toBe(50);
    }
  });
});
