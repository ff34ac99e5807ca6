// A consumer in its own process, so latency is measured across processes and memory is the
// consumer's alone. Forked by ChildConsumer; configured through BENCH_CHILD; reports over IPC.
import { quietNestLogs } from './bench-logger.js';
import { contenderByName } from './contenders.js';
import { nowMs } from './stats.js';
import type { ChildConfig, ChildReport } from './child-consumer.js';

quietNestLogs();
const config = JSON.parse(process.env.BENCH_CHILD ?? '{}') as ChildConfig;
const send = (report: ChildReport) => process.send?.(report);

let samples: Array<[number, number]> = [];
const liveHeapAt = new Set(config.liveHeapAt ?? []);
const gc = (globalThis as { gc?: () => void }).gc;
if (liveHeapAt.size > 0 && !gc)
  throw new Error('liveHeapAt needs the child started with --expose-gc');
let handled = 0;
const consumer = await contenderByName(config.contender).startConsumer(config.url, {
  started: (payload) => {
    if (payload.sentAt > 0) samples.push([payload.n, nowMs() - payload.sentAt]);
  },
  handled: () => {
    handled++;
    if (config.checkpointEvery && (handled === 1 || handled % config.checkpointEvery === 0)) {
      send({ type: 'checkpoint', handled, at: nowMs() });
    }
    // After the checkpoint, so the pause of the collection falls outside the timed windows.
    if (liveHeapAt.has(handled)) {
      gc!();
      send({ type: 'heap', handled, liveHeap: process.memoryUsage().heapUsed });
    }
  },
});

const flush = () => {
  if (samples.length > 0) send({ type: 'samples', samples });
  samples = [];
  send({ type: 'progress', handled });
};
const flushTimer = setInterval(flush, 50);
const rssTimer = setInterval(
  () => send({ type: 'rss', rss: process.memoryUsage().rss, at: nowMs() }),
  config.rssIntervalMs ?? 1000,
);

process.on('message', (message: { type: string }) => {
  if (message.type !== 'stop') return;
  clearInterval(flushTimer);
  clearInterval(rssTimer);
  void consumer.stop().then(() => {
    flush();
    send({ type: 'stopped', handled });
    process.disconnect();
  });
});
send({ type: 'ready', pid: process.pid });
