import { Logger, makeWorkerUtils, run, runMigrations } from 'graphile-worker';
import pg from 'pg';
import type { Contender } from './contender.js';
import { INSERT_BUSINESS_ROW, type BenchPayload } from './workload.js';

const TASK = 'bench_entry';

/** Errors only: graphile-worker logs every job at info level otherwise. */
const logger = new Logger(() => (level, message) => {
  if (level === 'error') console.error(`graphile-worker: ${message}`);
});

export interface GraphileWorkerSettings {
  readonly concurrency: number;
  /** `preset.worker.localQueue.size`; -1 turns the local queue off. */
  readonly localQueueSize: number;
  /** `completeJobBatchDelay` and `failJobBatchDelay`; -1 turns batching off. */
  readonly completionBatchDelay: number;
}

/**
 * A pool we end ourselves: graphile-worker ends the pools it creates in the background after
 * `stop()`, and the database is dropped right after a run.
 */
function ownPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max });
  const report = (error: Error) => console.error(`graphile-worker pool: ${error.message}`);
  pool.on('error', report);
  pool.on('connect', (client) => client.on('error', report));
  return pool;
}

/**
 * graphile-worker 0.18. Its task cannot join the transaction that completes the job, so the
 * handler's row commits on its own, before the completion: a crash in between runs it again.
 */
export function graphileWorkerContender(settings: GraphileWorkerSettings): Contender {
  const { concurrency, localQueueSize, completionBatchDelay } = settings;
  const localQueue = localQueueSize > 0;
  return {
    name: localQueue ? 'graphile-worker' : 'graphile-worker-direct',
    label: localQueue ? 'graphile-worker (local queue)' : 'graphile-worker',
    settings:
      `\`concurrentJobs\` ${concurrency}, \`maxPoolSize\` ${concurrency + 1}, ` +
      (localQueue ? `\`localQueue.size\` ${localQueueSize}, ` : 'no local queue, ') +
      `\`completeJobBatchDelay\`/\`failJobBatchDelay\` ${completionBatchDelay}`,
    guarantee:
      'business row committed by its own query before the job is completed (at least once)',

    async prepare(url) {
      const pool = ownPool(url, 2);
      try {
        await runMigrations({ pgPool: pool, logger });
      } finally {
        await pool.end();
      }
    },

    async startConsumer(url, hooks) {
      const pool = ownPool(url, concurrency + 1);
      const runner = await run({
        pgPool: pool,
        concurrency,
        noHandleSignals: true,
        logger,
        taskList: {
          [TASK]: async (payload, helpers) => {
            const data = payload as BenchPayload;
            hooks.started?.(data);
            await helpers.query(INSERT_BUSINESS_ROW, [data.n]);
            hooks.handled?.(data);
          },
        },
        preset: {
          worker: {
            ...(localQueue ? { localQueue: { size: localQueueSize } } : {}),
            completeJobBatchDelay: completionBatchDelay,
            failJobBatchDelay: completionBatchDelay,
          },
        },
      });
      return {
        stop: async () => {
          await runner.stop();
          await runner.promise;
          await pool.end();
        },
      };
    },

    async startProducer(url) {
      const pool = ownPool(url, 10);
      const utils = await makeWorkerUtils({ pgPool: pool, logger });
      return {
        emit: async (payload) => {
          await utils.addJob(TASK, payload);
        },
        close: async () => {
          await utils.release();
          await pool.end();
        },
      };
    },

    async insertBacklog(url, count) {
      const pool = ownPool(url, 2);
      const utils = await makeWorkerUtils({ pgPool: pool, logger });
      try {
        for (let first = 1; first <= count; first += 1000) {
          const jobs = [];
          for (let n = first; n < Math.min(count + 1, first + 1000); n++) {
            jobs.push({ identifier: TASK, payload: { n, sentAt: 0 } });
          }
          await utils.addJobs(jobs);
        }
      } finally {
        await utils.release();
        await pool.end();
      }
    },
  };
}
