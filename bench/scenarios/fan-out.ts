import pg from 'pg';
import { firstValueFrom, Subscription } from 'rxjs';
import { acquireListener, LISTENER_DEFAULTS } from '../../lib/index.js';
import { inFreshDatabase } from '../support/database.js';
import { sleep } from '../support/harness.js';
import {
  formatMs,
  formatRuns,
  type BenchContext,
  type Scenario,
  type ScenarioResult,
} from '../support/report.js';
import { nowMs, summarizeLatencies, summarizeRuns, type RunSummary } from '../support/stats.js';

const SIZES = {
  tiny: { subscribers: 100, notifications: 10 },
  full: { subscribers: 1000, notifications: 200 },
};
const INTERVAL_MS = 20;

type Layout = 'one-channel' | 'own-channels';

export interface FanOutRun {
  readonly layout: Layout;
  /** LISTEN sessions of the database seen in pg_stat_activity while subscribed. */
  readonly listenConnections: number;
  /** Whether that session is the listener's own backend. */
  readonly samePid: boolean;
  readonly deliveries: number;
  readonly expected: number;
  readonly p50: number;
  readonly p99: number;
  /** Per notification: the time until the last of its subscribers got it; median and max. */
  readonly lastP50: number;
  readonly lastMax: number;
}

export interface FanOutData {
  readonly layouts: Array<{
    layout: Layout;
    runs: FanOutRun[];
    p50: RunSummary;
    p99: RunSummary;
    lastP50: RunSummary;
  }>;
}

/**
 * One PostgresListener, `subscribers` subscriptions: all on one channel (each NOTIFY reaches all
 * of them) or one channel each (each NOTIFY reaches one). NOTIFYs come from another connection.
 */
async function measure(
  url: string,
  layout: Layout,
  size: (typeof SIZES)['full'],
): Promise<FanOutRun> {
  const lease = acquireListener({ connectionString: url });
  const { listener } = lease;
  const sender = new pg.Client({ connectionString: url });
  const subscriptions = new Subscription();
  const latencies: number[] = [];
  const lastArrival = new Map<number, number>();
  try {
    await listener.start();
    await sender.connect();
    const channelOf = (i: number) =>
      layout === 'one-channel' ? 'bench_fanout' : `bench_fanout_${i}`;
    for (let i = 0; i < size.subscribers; i++) {
      subscriptions.add(
        listener.notifications(channelOf(i)).subscribe((payload) => {
          const at = nowMs();
          const { seq, sentAt } = JSON.parse(payload) as { seq: number; sentAt: number };
          latencies.push(at - sentAt);
          lastArrival.set(seq, Math.max(lastArrival.get(seq) ?? 0, at - sentAt));
        }),
      );
    }
    // ready$ answers once the LISTENs sent before it are acknowledged.
    await firstValueFrom(listener.ready$);
    const [activity] = (
      await sender.query<{ sessions: number; pids: number[] }>(
        `SELECT count(*)::int AS sessions, array_agg(pid) AS pids FROM pg_stat_activity
         WHERE datname = current_database()
           AND (application_name = $1 OR query ILIKE 'LISTEN%' OR query ILIKE 'UNLISTEN%')`,
        [LISTENER_DEFAULTS.applicationName],
      )
    ).rows;
    for (let seq = 1; seq <= size.notifications; seq++) {
      const target = layout === 'one-channel' ? 0 : Math.floor(Math.random() * size.subscribers);
      await sender.query('SELECT pg_notify($1, $2)', [
        channelOf(target),
        JSON.stringify({ seq, sentAt: nowMs() }),
      ]);
      await sleep(INTERVAL_MS);
    }
    const expected = size.notifications * (layout === 'one-channel' ? size.subscribers : 1);
    const deadline = Date.now() + 10_000;
    while (latencies.length < expected && Date.now() < deadline) await sleep(10);
    const summary = summarizeLatencies(latencies);
    const last = summarizeLatencies([...lastArrival.values()]);
    return {
      layout,
      listenConnections: activity.sessions,
      samePid: (activity.pids ?? []).includes(listener.backendPid ?? -1),
      deliveries: latencies.length,
      expected,
      p50: summary.p50,
      p99: summary.p99,
      lastP50: last.p50,
      lastMax: last.max,
    };
  } finally {
    subscriptions.unsubscribe();
    await sender.end().catch(() => undefined);
    await lease.release();
  }
}

export const fanOutScenario: Scenario<FanOutData> = {
  name: 'fan-out',
  title: '5. Fan-out',

  async run(context: BenchContext): Promise<ScenarioResult<FanOutData>> {
    const size = SIZES[context.scale];
    const layouts: Layout[] = ['one-channel', 'own-channels'];
    const runs = new Map<Layout, FanOutRun[]>(layouts.map((l) => [l, []]));
    for (let run = 0; run < context.runs; run++) {
      for (const layout of layouts) {
        const result = await inFreshDatabase(context.serverUrl, (db) =>
          measure(db.url, layout, size),
        );
        runs.get(layout)!.push(result);
        context.log(
          `fan-out run ${run + 1}/${context.runs} ${layout}: ${result.listenConnections} LISTEN ` +
            `connection(s), ${result.deliveries}/${result.expected} deliveries, p50 ` +
            `${formatMs(result.p50)} p99 ${formatMs(result.p99)} ms`,
        );
      }
    }
    const data: FanOutData = {
      layouts: layouts.map((layout) => {
        const r = runs.get(layout)!;
        return {
          layout,
          runs: r,
          p50: summarizeRuns(r.map((x) => x.p50)),
          p99: summarizeRuns(r.map((x) => x.p99)),
          lastP50: summarizeRuns(r.map((x) => x.lastP50)),
        };
      }),
    };
    const all = data.layouts.flatMap((l) => l.runs);
    const oneConnection = all.every((r) => r.listenConnections === 1 && r.samePid);
    const labels: Record<Layout, string> = {
      'one-channel': `${size.subscribers} subscribers on one channel`,
      'own-channels': `${size.subscribers} subscribers on ${size.subscribers} channels`,
    };
    return {
      scenario: this.name,
      title: this.title,
      method: [
        `One process holds one \`PostgresListener\` (\`acquireListener\`) and subscribes ` +
          `${size.subscribers} times with \`listener.notifications(channel)\`: either all on one ` +
          'channel, so each NOTIFY is delivered to every subscriber, or each on its own channel ' +
          '(one LISTEN per channel), with NOTIFYs going to a random channel.',
        "LISTEN sessions are counted in `pg_stat_activity` of the run's database: sessions whose " +
          `\`application_name\` is \`${LISTENER_DEFAULTS.applicationName}\` or whose last query ` +
          "was a LISTEN; the session must be the listener's own `backendPid`.",
        `Another connection sends ${size.notifications} NOTIFYs, one every ${INTERVAL_MS} ms, ` +
          'each carrying its send time; each subscriber takes the difference on arrival. The ' +
          'latency includes the commit of the NOTIFY (fsync on).',
      ],
      tables: [
        {
          title: `Delivery, median of ${context.runs} runs (min–max, ±half-range)`,
          head: [
            'Layout',
            'LISTEN connections',
            'deliveries',
            'p50 ms',
            'p99 ms',
            'to the last subscriber, p50 ms',
          ],
          rows: data.layouts.map((l) => [
            labels[l.layout],
            [...new Set(l.runs.map((r) => r.listenConnections))].join(', '),
            l.runs.map((r) => `${r.deliveries}/${r.expected}`).join(', '),
            formatRuns(l.p50, formatMs),
            formatRuns(l.p99, formatMs),
            formatRuns(l.lastP50, formatMs),
          ]),
        },
      ],
      targets: [
        {
          target: `${size.subscribers} subscribers in one process hold one LISTEN connection`,
          measured: oneConnection
            ? "one LISTEN session in every run, the listener's own backend"
            : all.map((r) => r.listenConnections).join(', '),
          met: oneConnection,
        },
      ],
      notes: [],
      data,
    };
  },
};
