import { availableParallelism } from 'node:os';
import type { Contender } from '../support/contender.js';
import {
  GRAPHILE_WORKER,
  PG_BOSS_NOTIFY,
  PG_BOSS_POLLING,
  TRANSPORT,
  TRANSPORT_TUNED,
  TRANSPORT_UNPREPARED,
} from '../support/contenders.js';
import { inFreshDatabase } from '../support/database.js';
import { Counter, emitRange, rotate, waitForCommittedRows } from '../support/harness.js';
import {
  formatCount,
  formatRatio,
  formatRuns,
  type BenchContext,
  type Scenario,
  type ScenarioResult,
} from '../support/report.js';
import { CpuMeter, WalMeter, type CpuUsage, type WalUsage } from '../support/resources.js';
import { median, nowMs, summarizeRuns, type RunSummary } from '../support/stats.js';
import { countBusinessRows, createBusinessTable } from '../support/workload.js';

const SIZES = {
  tiny: { messages: 60, warmup: 10, emitters: 10 },
  full: { messages: 10_000, warmup: 500, emitters: 10 },
};

export interface EndToEndRun {
  readonly perSecond: number;
  /** Rate at which the emitters got their sends acknowledged, alone. */
  readonly sendPerSecond: number;
  /** CPU of this process and of PostgreSQL over the timed part. */
  readonly cpu: CpuUsage;
  /**
   * WAL of the whole server from the consumer's start to the producer's and consumer's close,
   * warm-up included; undefined before PostgreSQL 14.
   */
  readonly wal: WalUsage | undefined;
  /** Business rows after the run, and how many distinct messages they belong to. */
  readonly rows: number;
  readonly distinct: number;
  readonly expected: number;
}

export interface EndToEndData {
  readonly contenders: Array<{
    name: string;
    label: string;
    runs: EndToEndRun[];
    rate: RunSummary;
    sendRate: RunSummary;
  }>;
}

/** Emits warm-up then `messages` from concurrent emitters; times first emit → last row committed. */
export async function measureEndToEnd(
  serverUrl: string,
  contender: Contender,
  size: (typeof SIZES)['full'],
): Promise<EndToEndRun> {
  return inFreshDatabase(serverUrl, async (db) => {
    await createBusinessTable(db.url);
    await contender.prepare(db.url);
    const handled = new Counter();
    // Over the whole workload, warm-up included: PostgreSQL reports a connection's WAL for sure
    // only when it closes, so the meter spans the consumer's and producer's connections.
    const walMeter = await WalMeter.start(db.url);
    const consumer = await contender.startConsumer(db.url, { handled: () => handled.increment() });
    const producer = await contender.startProducer(db.url);
    const expected = size.warmup + size.messages;
    const timeoutMs = 60_000 + size.messages * 10;
    let perSecond: number;
    let sendPerSecond: number;
    let cpu: CpuUsage;
    try {
      await emitRange(producer, 1, size.warmup, size.emitters);
      await handled.reach(size.warmup, timeoutMs, `${contender.label} warm-up`);
      await waitForCommittedRows(db.url, size.warmup, timeoutMs);
      const meter = await CpuMeter.start(db.url);
      const start = nowMs();
      await emitRange(producer, size.warmup + 1, expected, size.emitters);
      sendPerSecond = (size.messages * 1000) / (nowMs() - start);
      await handled.reach(expected, timeoutMs, contender.label);
      await waitForCommittedRows(db.url, expected, timeoutMs);
      perSecond = (size.messages * 1000) / (nowMs() - start);
      cpu = meter.stop();
    } finally {
      await producer.close();
      await consumer.stop();
    }
    const wal = await walMeter.stop();
    const { rows, distinct } = await countBusinessRows(db.url);
    return { perSecond, sendPerSecond, cpu, wal, rows, distinct, expected };
  });
}

/** Median WAL flushes per 1,000 messages and WAL bytes per message, as two table cells. */
export function walPerMessage(
  runs: readonly { wal: WalUsage | undefined }[],
  messages: number,
): [flushes: string, bytes: string] {
  const measured = runs.flatMap((r) => (r.wal ? [r.wal] : []));
  if (measured.length === 0) return ['n/a', 'n/a'];
  return [
    median(measured.map((w) => (w.syncs * 1000) / messages)).toFixed(0),
    formatCount(median(measured.map((w) => w.bytes / messages))),
  ];
}

/** Median CPU per timed message, as "Node.js + PostgreSQL". */
export function cpuPerMessage(runs: readonly { cpu: CpuUsage }[], messages: number): string {
  const node = median(runs.map((r) => r.cpu.nodeMs / messages));
  const postgres = median(runs.map((r) => r.cpu.postgresMs / messages));
  return `${node.toFixed(3)} + ${Number.isNaN(postgres) ? 'n/a' : postgres.toFixed(3)}`;
}

/** Median share of the machine's cores busy with this process and PostgreSQL. */
export function cpuBusy(runs: readonly { cpu: CpuUsage }[]): string {
  const share = median(
    runs.map((r) => (r.cpu.nodeMs + r.cpu.postgresMs) / r.cpu.wallMs / availableParallelism()),
  );
  return Number.isNaN(share) ? 'n/a' : `${Math.round(share * 100)}%`;
}

/** Median CPU of everything else on the machine meanwhile, in cores: how noisy the run was. */
export function otherLoad(runs: readonly { cpu: CpuUsage }[]): string {
  const cores = median(runs.map((r) => r.cpu.otherMs / r.cpu.wallMs));
  return Number.isNaN(cores) ? 'n/a' : cores.toFixed(2);
}

export const endToEndScenario: Scenario<EndToEndData> = {
  name: 'end-to-end',
  title: '1. End to end, exactly once',

  async run(context: BenchContext): Promise<ScenarioResult<EndToEndData>> {
    const size = SIZES[context.scale];
    const contenders = [
      TRANSPORT,
      TRANSPORT_TUNED,
      TRANSPORT_UNPREPARED,
      PG_BOSS_POLLING,
      PG_BOSS_NOTIFY,
      GRAPHILE_WORKER,
    ];
    const runs = new Map<Contender, EndToEndRun[]>(contenders.map((c) => [c, []]));
    for (let run = 0; run < context.runs; run++) {
      for (const contender of rotate(contenders, run)) {
        const result = await measureEndToEnd(context.serverUrl, contender, size);
        runs.get(contender)!.push(result);
        context.log(
          `end-to-end run ${run + 1}/${context.runs} ${contender.label}: ` +
            `${formatCount(result.perSecond)}/s (sends ${formatCount(result.sendPerSecond)}/s), ` +
            `${result.rows} rows for ${result.expected} messages`,
        );
      }
    }
    const data: EndToEndData = {
      contenders: contenders.map((c) => {
        const results = runs.get(c)!;
        return {
          name: c.name,
          label: c.label,
          runs: results,
          rate: summarizeRuns(results.map((r) => r.perSecond)),
          sendRate: summarizeRuns(results.map((r) => r.sendPerSecond)),
        };
      }),
    };
    const ours = data.contenders[0];
    const bestPeer = data.contenders
      .filter((c) => !c.name.startsWith('nestjs-pg-transport'))
      .reduce((best, c) => (c.rate.median > best.rate.median ? c : best));
    const ratio = ours.rate.median / bestPeer.rate.median;
    return {
      scenario: this.name,
      title: this.title,
      method: [
        `${formatCount(size.messages)} messages (after ${formatCount(size.warmup)} warm-up ` +
          `messages that are not timed) are emitted by ${size.emitters} concurrent emitters; each ` +
          'emitter awaits its send before the next, so at most 10 sends are in flight.',
        'The handler writes one row into a `business` table. Time runs from the first timed emit ' +
          'to the moment a separate connection sees the last business row committed.',
        'Producer and consumer run in the same Node.js process for every contender. Every ' +
          'contender gets a fresh database per run; the order of contenders rotates between runs.',
        'Exactly once is checked after each run: business rows = distinct messages = messages sent.',
        'WAL flushes and bytes come from `pg_stat_wal` (flushes from `pg_stat_io` on ' +
          'PostgreSQL 18), per message over the whole workload, warm-up included: server-wide, ' +
          'so anything else the server ran meanwhile counts too. Every durable commit waits for ' +
          'a flush; commits that arrive during one share the next.',
        ...contenders.map((c) => `${c.label}: ${c.settings}. Consume: ${c.guarantee}.`),
      ],
      tables: [
        {
          title: `Messages per second, median of ${context.runs} runs (min–max, ±half-range)`,
          head: [
            'Contender',
            'msg/s end to end',
            'vs ours',
            'sends/s acknowledged',
            'CPU ms/msg: Node.js + PostgreSQL',
            'CPU busy (of all cores)',
            'other load (cores)',
            'WAL flushes per 1,000 msgs',
            'WAL bytes/msg',
            'Exactly once',
          ],
          rows: data.contenders.map((c) => [
            c.label,
            formatRuns(c.rate, formatCount),
            c === ours ? '1.00×' : formatRatio(c.rate.median / ours.rate.median),
            formatRuns(c.sendRate, formatCount),
            cpuPerMessage(c.runs, size.messages),
            cpuBusy(c.runs),
            otherLoad(c.runs),
            ...walPerMessage(c.runs, size.warmup + size.messages),
            c.runs.every((r) => r.rows === r.expected && r.distinct === r.expected)
              ? 'yes, every run'
              : c.runs.map((r) => `${r.rows} rows/${r.distinct} distinct`).join('; '),
          ]),
        },
      ],
      targets: [
        {
          target: 'End to end exactly once ≥ 3× the better peer',
          measured:
            `${formatCount(ours.rate.median)}/s vs ${bestPeer.label} ` +
            `${formatCount(bestPeer.rate.median)}/s = ${formatRatio(ratio)} with the defaults; ` +
            data.contenders
              .slice(1, 3)
              .map((c) => `${formatRatio(c.rate.median / bestPeer.rate.median)} for ${c.label}`)
              .join('; '),
          met: ratio >= 3,
        },
      ],
      notes: [
        `Ours with the handler's INSERT prepared (\`ctx.query\`) against unprepared: ` +
          `${formatRatio(ours.rate.median / data.contenders[2].rate.median)} in the medians ` +
          `(per run ${ours.runs
            .map((run, i) => formatRatio(run.perSecond / data.contenders[2].runs[i].perSecond))
            .join(', ')}).`,
      ],
      data,
    };
  },
};
