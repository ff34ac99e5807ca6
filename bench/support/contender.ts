import type { BenchPayload } from './workload.js';

/** Called by a contender's handler, so the benchmark sees each message as it is handled. */
export interface ConsumerHooks {
  /** First thing in the handler: "handler start" for latency. */
  readonly started?: (payload: BenchPayload) => void;
  /** After the handler wrote its business row (the row commits with the consume, or just after). */
  readonly handled?: (payload: BenchPayload) => void;
}

export interface RunningConsumer {
  stop(): Promise<void>;
}

export interface Producer {
  emit(payload: BenchPayload): Promise<void>;
  close(): Promise<void>;
}

/** One queue under test, driven the same way as the others. */
export interface Contender {
  /** Stable id, also used to pick the contender in a child process. */
  readonly name: string;
  /** Row label in result tables. */
  readonly label: string;
  /** The settings it runs with, for the method section. */
  readonly settings: string;
  /** What its consume guarantees for the handler's business row. */
  readonly guarantee: string;
  /** Creates its schema (and queue) in a fresh database. */
  prepare(url: string): Promise<void>;
  /** Starts consuming `bench.entry`; each message writes one row into `business`. */
  startConsumer(url: string, hooks: ConsumerHooks): Promise<RunningConsumer>;
  startProducer(url: string): Promise<Producer>;
  /** Inserts `count` messages in bulk, the fastest way the contender offers. */
  insertBacklog(url: string, count: number): Promise<void>;
}

export const BENCH_PATTERN = 'bench.entry';
