import {
  Inject,
  Injectable,
  Logger,
  Optional,
  type BeforeApplicationShutdown,
} from '@nestjs/common';
import { PostgresTransport } from '../postgres-transport.service.js';
import { deadLetterQueries, type DeadLetterScope } from '../sql/admin.queries.js';
import { WakeupNotifier, type WakeupHint } from '../wakeup/wakeup-notifier.js';
import { limitOf, messageIdOf, scopeOfFilter } from './admin-arguments.js';
import {
  deadLetterOf,
  summaryOf,
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterPage,
  type DeadLetterRow,
  type ListDeadLettersOptions,
} from './dead-letter.js';
import {
  DEAD_LETTER_ADMIN_OPTIONS,
  DEFAULT_LIST_LIMIT,
  MAX_LIST_LIMIT,
  resolveDeadLetterAdminOptions,
  type DeadLetterAdminOptions,
  type ResolvedDeadLetterAdminOptions,
} from './dead-letter-admin.options.js';

/**
 * Lists, inspects, requeues and purges dead letters: rows whose handler failed `maxAttempts`
 * times. Only dead rows are ever touched; pending and consumed rows are out of reach. Arguments
 * are validated before any query (`InvalidArgumentError`).
 */
@Injectable()
export class DeadLetterAdmin implements BeforeApplicationShutdown {
  private readonly logger = new Logger('PostgresDeadLetters');
  private readonly options: ResolvedDeadLetterAdminOptions;
  private readonly queries: ReturnType<typeof deadLetterQueries>;
  private readonly notifier: WakeupNotifier;

  /** Throws `InvalidOptionError` for bad options. */
  constructor(
    private readonly transport: PostgresTransport,
    @Optional() @Inject(DEAD_LETTER_ADMIN_OPTIONS) options?: DeadLetterAdminOptions,
  ) {
    this.options = resolveDeadLetterAdminOptions(options);
    const { connection } = transport;
    this.queries = deadLetterQueries(connection.schema);
    this.notifier = new WakeupNotifier(connection);
  }

  /** A page of dead letters, newest first, optionally of one group and/or pattern. */
  async list(options: ListDeadLettersOptions = {}): Promise<DeadLetterPage> {
    const scope = scopeOfFilter(options);
    const limit = limitOf(options.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT);
    const before = options.before === undefined ? undefined : messageIdOf('before', options.before);
    const { text, values } = this.queries.list(scope, before !== undefined);
    const { rows } = await this.transport.pool.query<DeadLetterRow>(text, [
      ...values,
      ...(before === undefined ? [] : [before]),
      limit,
    ]);
    const items = rows.map(summaryOf);
    return rows.length === limit ? { items, nextBefore: rows[rows.length - 1]!.id } : { items };
  }

  /** Everything stored about one dead letter (payload, last error, attempts), or undefined. */
  async inspect(id: string | number | bigint): Promise<DeadLetter | undefined> {
    const { rows } = await this.transport.pool.query<DeadLetterRow>(this.queries.inspect, [
      messageIdOf('id', id),
    ]);
    return rows[0] && deadLetterOf(rows[0]);
  }

  /**
   * Makes a dead letter pending again: attempts reset to 0, due now, `last_error` kept until the
   * next failure. Its group is woken once the change commits. Returns 1, or 0 if `id` is not a
   * dead letter.
   */
  async requeue(id: string | number | bigint): Promise<number> {
    const messageId = messageIdOf('id', id);
    const { rows } = await this.transport.pool.query<WakeupHint>(this.queries.requeue, [messageId]);
    this.notifier.wake(rows);
    if (rows.length > 0) this.logger.log(`Requeued dead letter ${messageId}`);
    return rows.length;
  }

  /**
   * Requeues every dead letter matching the filter, `batchSize` rows per committed statement.
   * Messages that die again meanwhile are left dead. Returns how many were requeued.
   */
  async requeueAll(filter: DeadLetterFilter = {}): Promise<number> {
    const scope = scopeOfFilter(filter);
    const count = await this.inBatches(async (cutoff) => {
      const { text, values } = this.queries.requeueBatch(scope);
      const { rows } = await this.transport.pool.query<WakeupHint>(text, [
        ...values,
        cutoff,
        this.options.batchSize,
      ]);
      this.notifier.wake(rows);
      return rows.length;
    });
    if (count > 0) this.logger.log(`Requeued ${count} dead letters${describeScope(scope)}`);
    return count;
  }

  /** Deletes one dead letter. Returns 1, or 0 if `id` is not a dead letter. */
  async purge(id: string | number | bigint): Promise<number> {
    const messageId = messageIdOf('id', id);
    const { rowCount } = await this.transport.pool.query(this.queries.purge, [messageId]);
    if (rowCount) this.logger.log(`Purged dead letter ${messageId}`);
    return rowCount ?? 0;
  }

  /** Deletes every dead letter matching the filter, in batches. Returns how many. */
  async purgeAll(filter: DeadLetterFilter = {}): Promise<number> {
    const scope = scopeOfFilter(filter);
    const count = await this.inBatches(async (cutoff) => {
      const { text, values } = this.queries.purgeBatch(scope);
      const { rowCount } = await this.transport.pool.query(text, [
        ...values,
        cutoff,
        this.options.batchSize,
      ]);
      return rowCount ?? 0;
    });
    if (count > 0) this.logger.log(`Purged ${count} dead letters${describeScope(scope)}`);
    return count;
  }

  /** Sends the wake-ups of requeued messages before the pool closes. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.notifier.drain();
  }

  /**
   * Runs `batch` until one comes back short. The cutoff is the database's clock at the start,
   * as text so no microseconds are lost: rows that die after it are not touched.
   */
  private async inBatches(batch: (cutoff: string) => Promise<number>): Promise<number> {
    const { rows } = await this.transport.pool.query<{ now: string }>(this.queries.now);
    const cutoff = rows[0]!.now;
    let total = 0;
    for (;;) {
      const count = await batch(cutoff);
      total += count;
      if (count < this.options.batchSize) return total;
    }
  }
}

function describeScope(scope: DeadLetterScope): string {
  const parts = [
    scope.group !== undefined && `group "${scope.group}"`,
    scope.pattern !== undefined && `pattern "${scope.pattern}"`,
  ].filter(Boolean);
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
}
