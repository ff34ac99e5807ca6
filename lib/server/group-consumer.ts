import { Logger } from '@nestjs/common';
import type { ClaimedBatch } from './claimed-message.js';

/** Pause before claiming again after a failed claim (a broken pool connection, a restart). */
const CLAIM_RETRY_MS = 1_000;

export interface GroupConsumerDeps {
  readonly group: string;
  readonly concurrency: number;
  readonly batchSize: number;
  /** The next batch, or undefined when nothing is due. */
  readonly claim: () => Promise<ClaimedBatch | undefined>;
  readonly process: (batch: ClaimedBatch) => Promise<void>;
}

/**
 * Drains one group's messages when woken. One worker starts per wake-up; a worker that claims a
 * full batch starts another, up to `concurrency`, so sparse traffic costs one claim per message
 * and a backlog gets every worker. Workers stop when a claim finds less than a batch and no
 * wake-up arrived meanwhile.
 */
export class GroupConsumer {
  private readonly logger = new Logger('ServerPostgres');
  private workers = 0;
  /** Set by every wake-up; a worker clears it right before it claims. */
  private woken = false;
  private stopping = false;
  private idle: Array<() => void> = [];
  private claimRetry: NodeJS.Timeout | undefined;

  constructor(private readonly deps: GroupConsumerDeps) {}

  /** Signals that the group may have new messages. Cheap and safe to call often. */
  wake(): void {
    if (this.stopping) return;
    this.woken = true;
    if (this.workers === 0) this.startWorker();
  }

  get activeWorkers(): number {
    return this.workers;
  }

  /** Stops claiming and waits up to `timeoutMs` for in-flight batches. Resolves true if all ended. */
  async stop(timeoutMs: number): Promise<boolean> {
    this.stopping = true;
    clearTimeout(this.claimRetry);
    if (this.workers === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([
      new Promise<boolean>((resolve) => this.idle.push(() => resolve(true))),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    return ended;
  }

  private retryClaimSoon(): void {
    if (this.stopping || this.claimRetry) return;
    this.claimRetry = setTimeout(() => {
      this.claimRetry = undefined;
      this.wake();
    }, CLAIM_RETRY_MS);
    this.claimRetry.unref();
  }

  private startWorker(): void {
    this.workers++;
    void this.work().finally(() => {
      this.workers--;
      if (this.workers === 0) for (const resolve of this.idle.splice(0)) resolve();
    });
  }

  private async work(): Promise<void> {
    while (!this.stopping) {
      this.woken = false;
      let batch: ClaimedBatch | undefined;
      try {
        batch = await this.deps.claim();
      } catch (error) {
        // Wake-ups that arrived meanwhile found this worker running and started none, so try
        // again shortly rather than wait for the sweep.
        this.logger.warn(
          `Claim for group "${this.deps.group}" failed: ${(error as Error).message}`,
        );
        this.retryClaimSoon();
        return;
      }
      if (!batch) {
        if (this.woken) continue;
        return;
      }
      const full = batch.messages.length === this.deps.batchSize;
      if (full && this.workers < this.deps.concurrency) this.startWorker();
      await this.deps.process(batch);
      if (!full && !this.woken) return;
    }
  }
}
