import { benchPool, inFreshDatabase, query } from './database.js';
import { median, nowMs } from './stats.js';
import { subscribeBenchGroup } from './transport-contender.js';
import { closedLoops, openConnections } from './workload.js';

/** The modules of one build of the library that a comparison drives. */
interface Build {
  readonly label: string;
  readonly lib: typeof import('../../lib/index.js');
  readonly contenders: typeof import('./contenders.js');
  readonly workload: typeof import('./workload.js');
  readonly drain: typeof import('../scenarios/backlog-drain.js');
}

export const WORKLOADS = ['publish', 'drain', 'isolated-drain'] as const;
export type Workload = (typeof WORKLOADS)[number];

export interface CompareOptions {
  readonly serverUrl: string;
  /** The root of the other checkout, built (`dist/` holds its library and benchmarks). */
  readonly otherRoot: string;
  readonly workloads: readonly Workload[];
  readonly rounds: number;
  /** How long each publish workload runs, per build and round. */
  readonly seconds: number;
  /** Rows of each drained backlog. */
  readonly rows: number;
  readonly log: (message: string) => void;
}

/** Per-round rates of one measured workload, for this build and the other. */
export interface Compared {
  readonly workload: string;
  readonly unit: string;
  readonly mine: number[];
  readonly other: number[];
}

const PUBLISHERS = 16;

/**
 * Measures this build and the other in one process, alternating which goes first from round to
 * round, so that both see the same machine; the per-round ratio is what to read.
 */
export async function compareBuilds(options: CompareOptions): Promise<Compared[]> {
  const builds = [await thisBuild(), await otherBuild(options.otherRoot)];
  const results = new Map<string, Compared>();
  const record = (workload: string, unit: string, build: number, value: number) => {
    const entry = results.get(workload) ?? { workload, unit, mine: [], other: [] };
    results.set(workload, entry);
    (build === 0 ? entry.mine : entry.other).push(value);
  };
  for (let round = 0; round < options.rounds; round++) {
    for (const at of round % 2 === 0 ? [0, 1] : [1, 0]) {
      const build = builds[at];
      if (options.workloads.includes('publish')) {
        for (const variant of PUBLISH_VARIANTS) {
          const rate = await publish(options, build, variant);
          record(`publish: ${PUBLISH_LABELS[variant]}`, 'transactions/s', at, rate);
        }
      }
      if (options.workloads.includes('drain')) {
        const run = await build.drain.measureDrain(
          options.serverUrl,
          build.contenders.TRANSPORT,
          options.rows,
        );
        record('drain a backlog', 'rows/s', at, run.perSecond);
      }
      if (options.workloads.includes('isolated-drain')) {
        record(
          'drain a backlog of redelivered rows',
          'rows/s',
          at,
          await drainRedelivered(options, build),
        );
      }
      options.log(`round ${round + 1}/${options.rounds} ${build.label} done`);
    }
  }
  return [...results.values()];
}

/** Markdown: per workload, each build's median and the ratio of this build to the other. */
export function renderComparison(compared: readonly Compared[], otherRoot: string): string {
  const lines = [
    `| Workload | this build, median | ${otherRoot}, median | this / other, per round | median |`,
    '| --- | --- | --- | --- | --- |',
  ];
  for (const { workload, unit, mine, other } of compared) {
    const ratios = mine.map((value, i) => value / other[i]);
    lines.push(
      `| ${workload} | ${Math.round(median(mine))} ${unit} | ${Math.round(median(other))} ${unit} | ` +
        `${ratios.map((r) => r.toFixed(2)).join(', ')} | ${median(ratios).toFixed(2)} |`,
    );
  }
  return lines.join('\n');
}

const PUBLISH_VARIANTS = ['unawaited', 'business', 'together'] as const;
type PublishVariant = (typeof PUBLISH_VARIANTS)[number];
const PUBLISH_LABELS: Record<PublishVariant, string> = {
  unawaited: '`run` with an emit not awaited',
  business: '`run` with a business row and an awaited emit',
  together: '`run` with two queries under `Promise.all` and two emits not awaited',
};

/** PUBLISHERS loops of `host.run` transactions for `seconds`; transactions per second. */
async function publish(
  options: CompareOptions,
  build: Build,
  variant: PublishVariant,
): Promise<number> {
  return inFreshDatabase(options.serverUrl, async (db) => {
    await build.workload.createBusinessTable(db.url);
    await build.contenders.TRANSPORT.prepare(db.url);
    // An emit stores a row only for a subscribed group; no consumer runs here.
    await subscribeBenchGroup(db.url);
    await query(db.url, 'CHECKPOINT');
    const pool = benchPool(db.url, PUBLISHERS);
    const host = new build.lib.PostgresTransactionHost(pool);
    const client = new build.lib.ClientPostgres({
      connectionString: db.url,
      migrationsRun: false,
    });
    await client.connect();
    const insert = build.workload.INSERT_BUSINESS_ROW;
    const emit = (n: number) =>
      new Promise<void>((resolve, reject) =>
        client
          .emit('bench.entry', { n, sentAt: 0 })
          .subscribe({ complete: resolve, error: reject }),
      );
    const transaction: Record<PublishVariant, (n: number) => Promise<void>> = {
      unawaited: (n) =>
        host.run(async () => {
          void emit(n);
        }),
      business: (n) =>
        host.run(async () => {
          await host.query(insert, [n]);
          await emit(n);
        }),
      together: (n) =>
        host.run(async () => {
          await Promise.all([host.query(insert, [n]), host.query('SELECT 1')]);
          void emit(n);
          void emit(-n);
        }),
    };
    try {
      await openConnections(pool, PUBLISHERS);
      const { perSecond } = await closedLoops(PUBLISHERS, options.seconds, transaction[variant]);
      return perSecond;
    } finally {
      await client.close();
      await pool.end();
    }
  });
}

/**
 * Drains a backlog whose rows were all attempted once already, so that every batch runs in
 * savepoints, one per message; rows per second, checked to be written exactly once.
 */
async function drainRedelivered(options: CompareOptions, build: Build): Promise<number> {
  return inFreshDatabase(options.serverUrl, async (db) => {
    const contender = build.contenders.TRANSPORT;
    await build.workload.createBusinessTable(db.url);
    await contender.prepare(db.url);
    await contender.insertBacklog(db.url, options.rows);
    await query(db.url, 'UPDATE nestjs_transport.messages SET attempts = 1');
    await query(db.url, 'VACUUM ANALYZE');
    let handled = 0;
    let allHandled!: () => void;
    const done = new Promise<void>((resolve) => (allHandled = resolve));
    const start = nowMs();
    const consumer = await contender.startConsumer(db.url, {
      handled: () => {
        if (++handled === options.rows) allHandled();
      },
    });
    try {
      await done;
      const counted = () => build.workload.countBusinessRows(db.url);
      while ((await counted()).rows < options.rows) await new Promise((r) => setTimeout(r, 5));
      const perSecond = (options.rows * 1000) / (nowMs() - start);
      const { rows, distinct } = await counted();
      if (rows !== options.rows || distinct !== options.rows) {
        throw new Error(
          `${build.label}: ${rows} business rows (${distinct} distinct), expected ${options.rows}`,
        );
      }
      return perSecond;
    } finally {
      await consumer.stop();
    }
  });
}

async function thisBuild(): Promise<Build> {
  return {
    label: 'this build',
    lib: await import('../../lib/index.js'),
    contenders: await import('./contenders.js'),
    workload: await import('./workload.js'),
    drain: await import('../scenarios/backlog-drain.js'),
  };
}

async function otherBuild(root: string): Promise<Build> {
  const load = (path: string) =>
    import(new URL(`dist/${path}`, `file://${root.replace(/\/?$/, '/')}`).href);
  return {
    label: root,
    lib: await load('lib/index.js'),
    contenders: await load('bench/support/contenders.js'),
    workload: await load('bench/support/workload.js'),
    drain: await load('bench/scenarios/backlog-drain.js'),
  };
}
