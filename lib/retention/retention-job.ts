import {
  Inject,
  Injectable,
  Logger,
  Optional,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { PostgresTransport } from '../postgres-transport.service.js';
import { retentionQueries } from '../sql/admin.queries.js';
import {
  ABANDONED_MIN_AGE_MS,
  POSTGRES_RETENTION_OPTIONS,
  resolveRetentionOptions,
  type ResolvedRetentionOptions,
  type RetentionOptions,
} from './retention.options.js';

interface Step {
  readonly name: 'consumed' | 'abandoned' | 'dead letters';
  readonly text: string;
  readonly windowMs: number;
}

/** The lock is held by another process: this pass ends and leaves the work to it. */
const LOCK_TAKEN = Symbol('LOCK_TAKEN');

/**
 * Deletes what the transport no longer needs: consumed rows older than `retentionMs`, replies
 * nobody took and requests that expired unhandled, and (if configured) old dead letters.
 * Deletes go in batches of `batchSize`, each its own short transaction that skips locked rows,
 * so a pass never holds long locks. Each batch first takes a transaction-scoped advisory lock
 * with `pg_try_advisory_xact_lock`; a process that misses it ends its pass, so however many
 * replicas run the job, one deletes at a time.
 */
@Injectable()
export class RetentionJob
  implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown
{
  private readonly logger = new Logger('PostgresRetention');
  private readonly options: ResolvedRetentionOptions;
  private readonly queries: ReturnType<typeof retentionQueries>;
  private readonly steps: readonly Step[];
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  private closing = false;
  private tail: Promise<unknown> = Promise.resolve();

  /** Throws `InvalidOptionError` for bad options. */
  constructor(
    private readonly transport: PostgresTransport,
    @Optional() @Inject(POSTGRES_RETENTION_OPTIONS) options?: RetentionOptions,
  ) {
    this.options = resolveRetentionOptions(options);
    this.queries = retentionQueries(transport.connection.schema);
    const { retentionMs, deadLetterRetentionMs } = this.options;
    this.steps = [
      { name: 'consumed', text: this.queries.deleteConsumed, windowMs: retentionMs },
      {
        name: 'abandoned',
        text: this.queries.deleteAbandoned,
        windowMs: Math.max(retentionMs, ABANDONED_MIN_AGE_MS),
      },
      ...(deadLetterRetentionMs === null
        ? []
        : [
            {
              name: 'dead letters' as const,
              text: this.queries.deleteDead,
              windowMs: deadLetterRetentionMs,
            },
          ]),
    ];
  }

  /** Starts the timer (idempotent): a pass every `intervalMs`, the first one `intervalMs` from now. */
  start(): void {
    if (this.started || this.closing) return;
    this.started = true;
    this.schedule();
  }

  /**
   * One pass now (after any pass already running). Resolves with how many rows it deleted: 0 when
   * another process holds the lock, or after `close()`. Rejects if the database fails.
   */
  runOnce(): Promise<number> {
    if (this.closing) return Promise.resolve(0);
    const run = this.tail.then(() => this.pass());
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Stops the timer; a running pass stops after its current batch. Idempotent. */
  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.tail;
  }

  onApplicationBootstrap(): void {
    if (this.options.enabled) this.start();
  }

  /** Before the transport's pool closes. */
  beforeApplicationShutdown(): Promise<void> {
    return this.close();
  }

  onApplicationShutdown(): Promise<void> {
    return this.close();
  }

  private schedule(): void {
    if (this.closing) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.runOnce()
        .catch((error: unknown) =>
          this.logger.warn(
            `Retention pass failed; next in ${this.options.intervalMs} ms: ${
              error instanceof Error ? error.message : String(error)
            }`,
          ),
        )
        .finally(() => this.schedule());
    }, this.options.intervalMs);
    // A pending pass never keeps the process alive.
    this.timer.unref();
  }

  private async pass(): Promise<number> {
    const startedAt = Date.now();
    const deleted = new Map<Step['name'], number>();
    let total = 0;
    try {
      for (const step of this.steps) {
        for (;;) {
          if (this.closing) return total;
          const count = await this.batch(step);
          if (count === LOCK_TAKEN) {
            this.logger.debug('Another process holds the retention lock; skipping this pass');
            return total;
          }
          total += count;
          deleted.set(step.name, (deleted.get(step.name) ?? 0) + count);
          if (count < this.options.batchSize) break;
        }
      }
      return total;
    } finally {
      if (total > 0) {
        const parts = [...deleted].filter(([, n]) => n > 0).map(([name, n]) => `${n} ${name}`);
        this.logger.debug(
          `Deleted ${total} rows in ${Date.now() - startedAt} ms (${parts.join(', ')})`,
        );
      }
    }
  }

  /** One short transaction: the advisory lock, then at most `batchSize` deletes. */
  private async batch(step: Step): Promise<number | typeof LOCK_TAKEN> {
    const client = await this.transport.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ locked: boolean }>(this.queries.tryLock, [
        this.transport.connection.schemaName,
      ]);
      if (!rows[0]!.locked) {
        await client.query('ROLLBACK');
        return LOCK_TAKEN;
      }
      const { rowCount } = await client.query(step.text, [step.windowMs, this.options.batchSize]);
      await client.query('COMMIT');
      return rowCount ?? 0;
    } catch (error) {
      broken = error instanceof Error ? error : new Error(String(error));
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release(broken);
    }
  }
}
