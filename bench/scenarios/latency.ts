import { loadavg } from 'node:os';
import type { Contender, Producer } from '../support/contender.js';
import { ChildConsumer } from '../support/child-consumer.js';
import {
  GRAPHILE_WORKER,
  GRAPHILE_WORKER_DIRECT,
  NOTIFY_FLOOR,
  PG_BOSS_NOTIFY,
  TRANSPORT,
} from '../support/contenders.js';
import { inFreshDatabase } from '../support/database.js';
import { rotate, sleep } from '../support/harness.js';
import {
  formatMs,
  formatRuns,
  type BenchContext,
  type Scenario,
  type ScenarioResult,
} from '../support/report.js';
import {
  nowMs,
  summarizeLatencies,
  summarizeRuns,
  type LatencySummary,
  type RunSummary,
} from '../support/stats.js';
import { countBusinessRows, createBusinessTable } from '../support/workload.js';

const SIZES = {
  tiny: { warmup: 5, sparse: 10, loadSeconds: 0.3, loadRate: 1000 },
  full: { warmup: 50, sparse: 300, loadSeconds: 5, loadRate: 1000 },
};
type Size = (typeof SIZES)['full'];

/** Ticks of the paced sender: the load is sent as `rate / 200` messages every 5 ms. */
const TICK_MS = 5;

export interface LatencyRun {
  readonly sparse: LatencySummary;
  readonly load: LatencySummary;
  /** Messages the producer actually sent per second during the load phase. */
  readonly loadSent: number;
  /**
   * Sends of the load phase that failed: a contender that falls far behind the schedule queues
   * sends until its pool gives up on them (pg-boss's "timeout exceeded when trying to connect").
   */
  readonly loadFailed: number;
  /** The machine's 1-minute load average when the run ended: how busy the machine was. */
  readonly loadAverage: number;
  readonly rows: number;
  readonly expected: number;
}

export interface LatencyData {
  readonly contenders: Array<{
    name: string;
    label: string;
    runs: LatencyRun[];
    sparse: Record<'p50' | 'p95' | 'p99', RunSummary>;
    load: Record<'p50' | 'p95' | 'p99', RunSummary>;
  }>;
}

/** Sends messages `first..last` one every 20–50 ms, without waiting for earlier sends. */
export async function sendSparse(producer: Producer, first: number, last: number): Promise<void> {
  const sends: Promise<void>[] = [];
  for (let n = first; n <= last; n++) {
    sends.push(producer.emit({ n, sentAt: nowMs() }));
    await sleep(20 + Math.random() * 30);
  }
  await Promise.all(sends);
}

/**
 * Sends at `rate` per second for `seconds`, open loop: each message is stamped with the time it
 * was due, so a sender falling behind shows up as latency instead of hiding it. A send that
 * fails is counted in `failed` and the others go on: one overloaded contender must not end the
 * whole benchmark.
 */
export async function sendPaced(
  producer: Producer,
  first: number,
  rate: number,
  seconds: number,
): Promise<{ last: number; sentPerSecond: number; failed: number }> {
  const total = Math.round(rate * seconds);
  const perTick = (rate * TICK_MS) / 1000;
  const sends: Promise<void>[] = [];
  let failed = 0;
  const countFailure = () => {
    failed++;
  };
  const start = nowMs();
  let n = first;
  for (let tick = 0; n < first + total; tick++) {
    const due = start + tick * TICK_MS;
    const wait = due - nowMs();
    if (wait > 0) await sleep(wait);
    for (let i = 0; i < perTick && n < first + total; i++) {
      sends.push(producer.emit({ n: n++, sentAt: due }).catch(countFailure));
    }
  }
  await Promise.all(sends);
  return { last: n - 1, sentPerSecond: (total * 1000) / (nowMs() - start), failed };
}

async function measure(serverUrl: string, contender: Contender, size: Size): Promise<LatencyRun> {
  return inFreshDatabase(serverUrl, async (db) => {
    await createBusinessTable(db.url);
    await contender.prepare(db.url);
    const consumer = await ChildConsumer.start({ contender: contender.name, url: db.url });
    const producer = await contender.startProducer(db.url);
    const sparseFirst = size.warmup + 1;
    const sparseLast = size.warmup + size.sparse;
    let load: Awaited<ReturnType<typeof sendPaced>>;
    try {
      await sendSparse(producer, 1, size.warmup);
      await sendSparse(producer, sparseFirst, sparseLast);
      await consumer.waitForHandled(sparseLast, 60_000);
      await sleep(200);
      load = await sendPaced(producer, sparseLast + 1, size.loadRate, size.loadSeconds);
      // A failed send wrote nothing (its pool never handed it a connection).
      await consumer.waitForHandled(load.last - load.failed, 120_000);
    } finally {
      await producer.close();
      await consumer.stop();
    }
    const within = (from: number, to: number) =>
      consumer.samples.filter(([n]) => n >= from && n <= to).map(([, ms]) => ms);
    const queue = contender !== NOTIFY_FLOOR;
    const counted = queue ? await countBusinessRows(db.url) : { rows: load.last };
    return {
      sparse: summarizeLatencies(within(sparseFirst, sparseLast)),
      load: summarizeLatencies(within(sparseLast + 1, load.last)),
      loadSent: load.sentPerSecond,
      loadFailed: load.failed,
      loadAverage: loadavg()[0],
      rows: counted.rows,
      expected: load.last - load.failed,
    };
  });
}

function percentiles(runs: LatencyRun[], phase: 'sparse' | 'load') {
  const of = (key: 'p50' | 'p95' | 'p99') => summarizeRuns(runs.map((r) => r[phase][key]));
  return { p50: of('p50'), p95: of('p95'), p99: of('p99') };
}

export const latencyScenario: Scenario<LatencyData> = {
  name: 'latency',
  title: '3. Latency, emit → handler start',

  async run(context: BenchContext): Promise<ScenarioResult<LatencyData>> {
    const size = SIZES[context.scale];
    const contenders = [
      TRANSPORT,
      PG_BOSS_NOTIFY,
      GRAPHILE_WORKER,
      GRAPHILE_WORKER_DIRECT,
      NOTIFY_FLOOR,
    ];
    const runs = new Map<Contender, LatencyRun[]>(contenders.map((c) => [c, []]));
    for (let run = 0; run < context.runs; run++) {
      for (const contender of rotate(contenders, run)) {
        const result = await measure(context.serverUrl, contender, size);
        runs.get(contender)!.push(result);
        context.log(
          `latency run ${run + 1}/${context.runs} ${contender.label}: sparse p50 ` +
            `${formatMs(result.sparse.p50)} p99 ${formatMs(result.sparse.p99)}; load p50 ` +
            `${formatMs(result.load.p50)} p99 ${formatMs(result.load.p99)} ms ` +
            `(${result.load.count} msgs, sent ${Math.round(result.loadSent)}/s` +
            (result.loadFailed > 0 ? `, ${result.loadFailed} sends failed)` : ')'),
        );
      }
    }
    const data: LatencyData = {
      contenders: contenders.map((c) => ({
        name: c.name,
        label: c.label,
        runs: runs.get(c)!,
        sparse: percentiles(runs.get(c)!, 'sparse'),
        load: percentiles(runs.get(c)!, 'load'),
      })),
    };
    const ours = data.contenders[0];
    const table = (phase: 'sparse' | 'load', title: string) => ({
      title,
      head: ['Contender', 'p50 ms', 'p95 ms', 'p99 ms', 'samples per run', 'load average per run'],
      rows: data.contenders.map((c) => [
        c.label,
        formatRuns(c[phase].p50, formatMs),
        formatRuns(c[phase].p95, formatMs),
        formatRuns(c[phase].p99, formatMs),
        [...new Set(c.runs.map((r) => r[phase].count))].join(', '),
        c.runs.map((r) => r.loadAverage.toFixed(1)).join(', '),
      ]),
    });
    const loadSent = data.contenders.map(
      (c) => `${c.label} ${Math.round(Math.min(...c.runs.map((r) => r.loadSent)))}/s`,
    );
    const failing = data.contenders.filter((c) => c.runs.some((r) => r.loadFailed > 0));
    const loadFailed = failing.map(
      (c) => `${c.label} ${c.runs.map((r) => r.loadFailed).join(', ')}`,
    );
    return {
      scenario: this.name,
      title: this.title,
      method: [
        'The consumer runs in a forked child process; the producer in the parent. Each payload ' +
          'carries the send time from CLOCK_MONOTONIC (`process.hrtime`), which is one clock for ' +
          'every process on the machine; the handler takes the difference as its first statement.',
        `Sparse: ${size.warmup} warm-up messages (not counted), then ${size.sparse} messages, one ` +
          'every 20–50 ms (uniformly random), each sent without waiting for the previous one.',
        `Under load: ${size.loadRate} messages per second for ${size.loadSeconds} s, sent open ` +
          `loop in ticks of ${TICK_MS} ms; each message is stamped with the time it was due, so ` +
          'a producer falling behind counts as latency.',
        `Slowest producer rate reached in the load phase, per contender: ${loadSent.join('; ')}.`,
        failing.length === 0
          ? 'No send failed in the load phase.'
          : 'Sends that failed in the load phase, per run (the contender fell so far behind that ' +
            'its pool gave up waiting for a connection; failed sends wrote nothing and have no ' +
            `latency sample): ${loadFailed.join('; ')}; every other contender: none.`,
        'Every contender has its own database per run; the order rotates between runs. Settings ' +
          'as in scenario 1; pg-boss is measured with LISTEN/NOTIFY only (polling adds up to its ' +
          '0.5 s interval). The floor row is no queue: an INSERT whose trigger NOTIFYs the row, ' +
          'received by one LISTEN connection in the child.',
      ],
      tables: [
        table(
          'sparse',
          `Sparse traffic (one message every 20–50 ms), median of ${context.runs} runs`,
        ),
        table('load', `Under ${size.loadRate} messages per second, median of ${context.runs} runs`),
      ],
      targets: [
        {
          target: 'Sparse p50 ≤ 2 ms',
          measured: `${formatMs(ours.sparse.p50.median)} ms`,
          met: ours.sparse.p50.median <= 2,
        },
        {
          target: 'Sparse p99 ≤ 5 ms',
          measured: `${formatMs(ours.sparse.p99.median)} ms`,
          met: ours.sparse.p99.median <= 5,
        },
        {
          target: 'Under ~1,000 msg/s, p50 ≤ 5 ms',
          measured: `${formatMs(ours.load.p50.median)} ms`,
          met: ours.load.p50.median <= 5,
        },
      ],
      notes: [],
      data,
    };
  },
};
