import pg from 'pg';
import type { Producer } from './contender.js';
import { nowMs } from './stats.js';

/** Counts handled messages and resolves waiters when a count is reached. */
export class Counter {
  private value = 0;
  private waiters: Array<{ target: number; resolve: () => void }> = [];

  get count(): number {
    return this.value;
  }

  increment(): void {
    this.value++;
    if (this.waiters.length === 0) return;
    this.waiters = this.waiters.filter((waiter) => {
      if (this.value < waiter.target) return true;
      waiter.resolve();
      return false;
    });
  }

  /** Resolves once the count reaches `target`; rejects after `timeoutMs` saying how far it got. */
  reach(target: number, timeoutMs: number, label: string): Promise<void> {
    if (this.value >= target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${label}: ${this.value} of ${target} handled after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push({
        target,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }
}

/** Emits messages `first..last` from `emitters` concurrent senders, each awaiting its own sends. */
export async function emitRange(
  producer: Producer,
  first: number,
  last: number,
  emitters: number,
): Promise<void> {
  let next = first;
  const sender = async () => {
    while (next <= last) {
      const n = next++;
      await producer.emit({ n, sentAt: nowMs() });
    }
  };
  await Promise.all(Array.from({ length: emitters }, sender));
}

/** Polls until `business` holds at least `count` committed rows. */
export async function waitForCommittedRows(
  url: string,
  count: number,
  timeoutMs: number,
): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM business');
      if (rows[0].n >= count) return;
      if (Date.now() > deadline) {
        throw new Error(
          `only ${rows[0].n} of ${count} business rows committed after ${timeoutMs} ms`,
        );
      }
      await sleep(2);
    }
  } finally {
    await client.end();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The items rotated by `by`, so each run starts with a different contender. */
export function rotate<T>(items: readonly T[], by: number): T[] {
  const shift = by % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}
