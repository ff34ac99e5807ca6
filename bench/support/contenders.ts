import type { Contender } from './contender.js';
import { graphileWorkerContender } from './graphile-worker-contender.js';
import { notifyFloorContender } from './notify-floor-contender.js';
import { pgBossContender } from './pg-boss-contender.js';
import { transportContender } from './transport-contender.js';

/** Each peer with its best documented settings for this machine (see docs/benchmarks.md). */
export const PG_BOSS_POLLING = pgBossContender({
  notify: false,
  batchSize: 100,
  localConcurrency: 4,
});
export const PG_BOSS_NOTIFY = pgBossContender({
  notify: true,
  batchSize: 100,
  localConcurrency: 4,
});
export const GRAPHILE_WORKER = graphileWorkerContender({
  concurrency: 24,
  localQueueSize: 500,
  completionBatchDelay: 0,
});
/** Without the local queue, which graphile-worker's documentation says may add latency. */
export const GRAPHILE_WORKER_DIRECT = graphileWorkerContender({
  concurrency: 24,
  localQueueSize: -1,
  completionBatchDelay: 0,
});
export const TRANSPORT = transportContender();
/** Ours with fewer connections and smaller batches, for a consumer that must stay light. */
export const TRANSPORT_TUNED = transportContender({ concurrency: 2, batchSize: 10 });
/** Ours with the handler's INSERT sent unprepared, as the peers' handlers send it. */
export const TRANSPORT_UNPREPARED = transportContender({ handlerQuery: 'client' });
export const NOTIFY_FLOOR = notifyFloorContender;

const ALL = [
  TRANSPORT,
  TRANSPORT_TUNED,
  TRANSPORT_UNPREPARED,
  PG_BOSS_POLLING,
  PG_BOSS_NOTIFY,
  GRAPHILE_WORKER,
  GRAPHILE_WORKER_DIRECT,
  NOTIFY_FLOOR,
];

/** Looks a contender up by name, for child processes. */
export function contenderByName(name: string): Contender {
  const contender = ALL.find((c) => c.name === name);
  if (!contender) throw new Error(`Unknown contender "${name}"`);
  return contender;
}
