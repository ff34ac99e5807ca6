import { PgBoss, type Db, type Job } from 'pg-boss';
import { BENCH_PATTERN, type Contender } from './contender.js';
import { INSERT_BUSINESS_ROW, type BenchPayload } from './workload.js';

const QUEUE = BENCH_PATTERN.replace('.', '_');

export interface PgBossSettings {
  /** LISTEN/NOTIFY wake-ups (`useListenNotify` + queue `notify`), or polling only. */
  readonly notify: boolean;
  readonly batchSize: number;
  readonly localConcurrency: number;
}

/** A lasting 'error' listener: pg-boss emits errors as events, and an unhandled one would throw. */
function quiet(boss: PgBoss): PgBoss {
  boss.on('error', (error: Error) => console.error(`pg-boss: ${error.message}`));
  return boss;
}

/**
 * pg-boss 12 with a transactional worker: the handler's row and the job's completion commit
 * together (`work(..., { transactional: true })`), the same guarantee as ours.
 */
export function pgBossContender(settings: PgBossSettings): Contender {
  const { notify, batchSize, localConcurrency } = settings;
  const mode = notify ? 'LISTEN/NOTIFY' : 'polling';
  return {
    name: notify ? 'pg-boss-notify' : 'pg-boss-polling',
    label: `pg-boss (${mode})`,
    settings:
      `${notify ? '`useListenNotify: true`, queue `notify: true`' : 'polling every 0.5 s (the minimum)'}, ` +
      `\`batchSize\` ${batchSize}, \`localConcurrency\` ${localConcurrency}, ` +
      '`burstWhenBatchFull: true`, `transactional: true`',
    guarantee:
      'business row written in the transaction that completes the job (`transactional: true`)',

    async prepare(url) {
      const boss = quiet(new PgBoss({ connectionString: url, supervise: false, schedule: false }));
      await boss.start();
      await boss.createQueue(QUEUE, { notify });
      await boss.stop({ graceful: false });
    },

    async startConsumer(url, hooks) {
      const boss = quiet(
        new PgBoss({
          connectionString: url,
          useListenNotify: notify,
          // Room for every transactional worker's connection, plus fetches.
          max: localConcurrency + 4,
        }),
      );
      await boss.start();
      await boss.work(
        QUEUE,
        {
          batchSize,
          localConcurrency,
          burstWhenBatchFull: true,
          pollingIntervalSeconds: 0.5,
          transactional: true,
        },
        async (jobs: Job<BenchPayload>[], db: Db) => {
          for (const job of jobs) {
            hooks.started?.(job.data);
            await db.executeSql(INSERT_BUSINESS_ROW, [job.data.n]);
            hooks.handled?.(job.data);
          }
        },
      );
      return { stop: () => boss.stop({ graceful: true, timeout: 10_000 }) };
    },

    async startProducer(url) {
      const boss = quiet(new PgBoss({ connectionString: url, supervise: false, schedule: false }));
      await boss.start();
      return {
        emit: async (payload) => {
          await boss.send(QUEUE, payload);
        },
        close: () => boss.stop({ graceful: false }),
      };
    },

    async insertBacklog(url, count) {
      const boss = quiet(new PgBoss({ connectionString: url, supervise: false, schedule: false }));
      await boss.start();
      try {
        for (let first = 1; first <= count; first += 1000) {
          const jobs = [];
          for (let n = first; n < Math.min(count + 1, first + 1000); n++) {
            jobs.push({ data: { n, sentAt: 0 } });
          }
          await boss.insert(QUEUE, jobs);
        }
      } finally {
        await boss.stop({ graceful: false });
      }
    },
  };
}
