import type pg from 'pg';

/** A write queued in a transaction; `config` is set once its statement is built. */
export interface LateWrite {
  config?: pg.QueryConfig;
  /** Called with the result before the write resolves, and before the commit's after-work. */
  readonly onResult?: (result: pg.QueryResult) => void;
  readonly resolve: (result: pg.QueryResult) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * The writes of a transaction that wait, until the promise callbacks queued so far have run, for
 * their transaction to commit. A function that returns without awaiting its write (an emit the
 * handler did not await) has its owner's commit start within those callbacks: the write is then
 * still queued and leaves with COMMIT, in one round trip. A write someone awaits leaves right
 * after them (a `process.nextTick` callback runs once the promise callbacks queued before and
 * during it have run), or before any later statement, so statements still reach PostgreSQL in
 * the order they were made and no I/O is waited for.
 */
export class LateWrites {
  private readonly queue: LateWrite[] = [];
  private flushScheduled = false;
  /** The owner is committing or rolling back and takes what is queued. */
  private held = false;

  constructor(
    /** Sends one statement in the transaction, ahead of anything sent after it. */
    private readonly send: (config: pg.QueryConfig) => Promise<pg.QueryResult>,
    /** Tracks a statement sent, so that the owner waits for it before it commits. */
    private readonly track: (sent: Promise<unknown>) => void,
  ) {}

  /** Queues a write whose statement `statement` builds. The returned promise is its result. */
  add(
    statement: Promise<pg.QueryConfig>,
    onResult?: LateWrite['onResult'],
  ): Promise<pg.QueryResult> {
    return new Promise((resolve, reject) => {
      const write: LateWrite = { onResult, resolve, reject };
      this.queue.push(write);
      const built = statement.then(
        (config) => {
          write.config = config;
          this.scheduleFlush();
        },
        (error: unknown) => {
          const at = this.queue.indexOf(write);
          if (at >= 0) this.queue.splice(at, 1);
          reject(error);
          // The writes queued behind it may be ready.
          this.scheduleFlush();
          // Rethrown so that the transaction, tracking this, fails its commit.
          throw error;
        },
      );
      this.track(built);
    });
  }

  /** Sends, in order, the writes at the head of the queue whose statement is built. */
  flush(): void {
    while (this.queue[0]?.config) {
      const write = this.queue.shift()!;
      const sent = this.send(write.config!);
      this.track(sent);
      sent.then((result) => LateWrites.deliver(write, result), write.reject);
    }
  }

  /** Keeps the queued writes for the owner from now on: no scheduled flush sends them. */
  hold(): void {
    this.held = true;
  }

  /**
   * Sends every queued write but the last, and returns the last, for the owner to send with its
   * COMMIT. Call once every statement is built (the transaction has settled).
   */
  takeLast(): LateWrite | undefined {
    const last = this.queue.pop();
    this.flush();
    return last;
  }

  /** Fails the writes still queued: their transaction rolled back before they were sent. */
  rejectAll(error: unknown): void {
    for (const write of this.queue.splice(0)) write.reject(error);
  }

  static deliver(write: LateWrite, result: pg.QueryResult): void {
    write.onResult?.(result);
    write.resolve(result);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.held) return;
    this.flushScheduled = true;
    process.nextTick(() => {
      this.flushScheduled = false;
      if (!this.held) this.flush();
    });
  }
}
