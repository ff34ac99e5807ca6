import type { Contender } from '../support/contender.js';
import {
  GRAPHILE_WORKER,
  PG_BOSS_POLLING,
  TRANSPORT,
  TRANSPORT_TUNED,
  TRANSPORT_UNPREPARED,
} from '../support/contenders.js';
import { inFreshDatabase, query } from '../support/database.js';
import { Counter, rotate, waitForCommittedRows } from '../support/harness.js';
import {
  formatCount,
  formatRatio,
  formatRuns,
  type BenchContext,
  type Scenario,
  type ScenarioResult,
} from '../support/report.js';
import { CpuMeter, type CpuUsage } from '../support/resources.js';
import { nowMs, summarizeRuns, type RunSummary } from '../support/stats.js';
import { STATEMENT_FLOOR } from '../support/statement-floor.js';
import { countBusinessRows, createBusinessTable } from '../support/workload.js';
import { cpuBusy, cpuPerMessage, otherLoad } from './end-to-end.js';

const SIZES = { tiny: { rows: 100 }, full: { rows: 20_000 } };

export interface DrainRun {
  readonly perSecond: number;
  readonly cpu: CpuUsage;
  readonly rows: number;
  readonly distinct: number;
  readonly expected: number;
}

export interface DrainData {
  readonly contenders: Array<{ name: string; label: string; runs: DrainRun[]; rate: RunSummary }>;
}

/** Inserts the backlog in bulk, then times consumer start → last business row committed. */
export async function measureDrain(
  serverUrl: string,
  contender: Contender,
  rows: number,
): Promise<DrainRun> {
  return inFreshDatabase(serverUrl, async (db) => {
    await createBusinessTable(db.url);
    await contender.prepare(db.url);
    await contender.insertBacklog(db.url, rows);
    // What autovacuum would soon do anyway; done for every contender so plans are alike.
    await query(db.url, 'VACUUM ANALYZE');
    const handled = new Counter();
    const meter = await CpuMeter.start(db.url);
    const start = nowMs();
    const consumer = await contender.startConsumer(db.url, { handled: () => handled.increment() });
    let perSecond: number;
    let cpu: CpuUsage;
    try {
      const timeoutMs = 60_000 + rows * 5;
      await handled.reach(rows, timeoutMs, contender.label);
      await waitForCommittedRows(db.url, rows, timeoutMs);
      perSecond = (rows * 1000) / (nowMs() - start);
      cpu = meter.stop();
    } finally {
      await consumer.stop();
    }
    const counted = await countBusinessRows(db.url);
    return { perSecond, cpu, ...counted, expected: rows };
  });
}

export const backlogDrainScenario: Scenario<DrainData> = {
  name: 'backlog',
  title: '2. Drain a backlog',

  async run(context: BenchContext): Promise<ScenarioResult<DrainData>> {
    const { rows } = SIZES[context.scale];
    const contenders = [
      TRANSPORT,
      TRANSPORT_TUNED,
      TRANSPORT_UNPREPARED,
      STATEMENT_FLOOR,
      PG_BOSS_POLLING,
      GRAPHILE_WORKER,
    ];
    const runs = new Map<Contender, DrainRun[]>(contenders.map((c) => [c, []]));
    for (let run = 0; run < context.runs; run++) {
      for (const contender of rotate(contenders, run)) {
        const result = await measureDrain(context.serverUrl, contender, rows);
        runs.get(contender)!.push(result);
        context.log(
          `backlog run ${run + 1}/${context.runs} ${contender.label}: ` +
            `${formatCount(result.perSecond)}/s, ${result.rows} rows for ${result.expected} messages`,
        );
      }
    }
    const data: DrainData = {
      contenders: contenders.map((c) => ({
        name: c.name,
        label: c.label,
        runs: runs.get(c)!,
        rate: summarizeRuns(runs.get(c)!.map((r) => r.perSecond)),
      })),
    };
    const [ours, tuned, unprepared, floor, , graphile] = data.contenders;
    const ratio = ours.rate.median / graphile.rate.median;
    const perRun = (of: typeof ours, to: typeof ours) =>
      of.runs.map((run, i) => formatRatio(run.perSecond / to.runs[i].perSecond)).join(', ');
    return {
      scenario: this.name,
      title: this.title,
      method: [
        `${formatCount(rows)} messages are inserted in bulk before any consumer runs: for ours ` +
          'one `INSERT … SELECT … FROM generate_series` into the messages table, for pg-boss ' +
          '`insert()` in chunks of 1,000, for graphile-worker `addJobs()` in chunks of 1,000. ' +
          'Then `VACUUM ANALYZE`, as autovacuum would do.',
        'Time runs from starting the consumer to the last business row committed, as seen from ' +
          'another connection. Same handler as scenario 1; fresh database per run; order rotates.',
        ...contenders.map((c) => `${c.label}: ${c.settings}.`),
      ],
      tables: [
        {
          title: `Rows drained per second, median of ${context.runs} runs (min–max, ±half-range)`,
          head: [
            'Contender',
            'rows/s',
            'vs graphile-worker',
            'CPU ms/msg: Node.js + PostgreSQL',
            'CPU busy (of all cores)',
            'other load (cores)',
            'Exactly once',
          ],
          rows: data.contenders.map((c) => [
            c.label,
            formatRuns(c.rate, formatCount),
            formatRatio(c.rate.median / graphile.rate.median),
            cpuPerMessage(c.runs, rows),
            cpuBusy(c.runs),
            otherLoad(c.runs),
            c.runs.every((r) => r.rows === r.expected && r.distinct === r.expected)
              ? 'yes, every run'
              : c.runs.map((r) => `${r.rows} rows/${r.distinct} distinct`).join('; '),
          ]),
        },
      ],
      targets: [
        {
          target: "Backlog drain exactly once ≥ 1.5× graphile-worker's local-queue rate",
          measured:
            `${formatCount(ours.rate.median)}/s vs ${formatCount(graphile.rate.median)}/s = ` +
            `${formatRatio(ratio)} with the defaults; ` +
            `${formatRatio(tuned.rate.median / graphile.rate.median)} for ${tuned.label}; ` +
            `${formatRatio(unprepared.rate.median / graphile.rate.median)} for ${unprepared.label}`,
          met: ratio >= 1.5,
        },
      ],
      notes: [
        `Ours against the statement floor, the same statements without the library: ` +
          `${formatRatio(ours.rate.median / floor.rate.median)} in the medians (per run ` +
          `${perRun(ours, floor)}); the floor against graphile-worker: ` +
          `${formatRatio(floor.rate.median / graphile.rate.median)} (per run ` +
          `${perRun(floor, graphile)}).`,
        `Ours with the handler's INSERT prepared (\`ctx.query\`) against unprepared: ` +
          `${formatRatio(ours.rate.median / unprepared.rate.median)} in the medians (per run ` +
          `${perRun(ours, unprepared)}).`,
      ],
      data,
    };
  },
};
