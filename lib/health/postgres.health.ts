import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import type { PostgresListener } from '../listener/index.js';
import { PostgresTransport } from '../postgres-transport.service.js';
import { healthQueries } from '../sql/admin.queries.js';
import { CheckTimeoutError, withClientWithin } from './bounded-checkout.js';
import {
  backlogProblems,
  describeProblems,
  listenerProblem,
  type GroupBacklog,
  type HealthProblem,
  type HealthReason,
} from './health-problems.js';
import { healthMessages } from './postgres-health.messages.js';
import {
  POSTGRES_HEALTH_OPTIONS,
  resolveHealthOptions,
  type PostgresHealthOptions,
  type ResolvedHealthOptions,
} from './postgres-health.options.js';

/** Reasons in the order they are reported: the likeliest root cause first. */
const PRIORITY: readonly HealthReason[] = [
  'invalid-option',
  'listener-closed',
  'timeout',
  'unreachable',
  'query-failed',
  'listener-down',
  'backlog',
  'dead-letters',
];

interface BacklogRow {
  group: string;
  pending: number;
  oldest_pending_age_ms: string | null;
  dead_letters: number;
}

interface Probe {
  reachable: boolean;
  groups?: Record<string, GroupBacklog>;
  problem?: HealthProblem;
}

/**
 * Terminus indicator of the transport: `isHealthy` for readiness (listener, pool, backlog per
 * consumer group), `isAlive` for liveness (process-local only). Both always resolve, `up` or
 * `down` with a `reason`; neither throws.
 */
@Injectable()
export class PostgresHealthIndicator {
  private readonly logger = new Logger('PostgresHealth');
  private readonly options: ResolvedHealthOptions;
  private readonly listener: PostgresListener;
  private readonly queries: ReturnType<typeof healthQueries>;
  private readonly resolved = new WeakMap<PostgresHealthOptions, ResolvedHealthOptions>();
  private readonly lastStatus = new Map<string, 'up' | 'down'>();

  /** Throws `InvalidOptionError` for bad default options. */
  constructor(
    private readonly transport: PostgresTransport,
    private readonly healthIndicatorService: HealthIndicatorService,
    @Optional() @Inject(POSTGRES_HEALTH_OPTIONS) options?: PostgresHealthOptions,
  ) {
    this.options = resolveHealthOptions(options);
    // Taken once: after shutdown the check reports this listener as closed instead of asking
    // the transport, which would open a new one.
    this.listener = transport.listener;
    this.queries = healthQueries(transport.connection.schema);
  }

  /**
   * Readiness: the LISTEN connection, a `SELECT 1` through the pool, and the backlog of every
   * consumer group, all within `timeoutMs`. `options` override the instance's field by field.
   */
  async isHealthy<const Key extends string = 'postgres'>(
    key: Key = 'postgres' as Key,
    options?: PostgresHealthOptions,
  ): Promise<HealthIndicatorResult<Key>> {
    const check = this.healthIndicatorService.check(key);
    const listener = this.listenerDetails();
    let resolved: ResolvedHealthOptions;
    try {
      resolved = this.resolve(options);
    } catch (error) {
      const message = healthMessages.invalidOption((error as Error).message);
      return this.report(key, check.down({ listener, reason: 'invalid-option', message }));
    }
    const problems: HealthProblem[] = [];
    const listenerIssue = listenerProblem(
      this.listener.status,
      Date.now(),
      resolved.maxListenerDownMs,
    );
    if (listenerIssue) problems.push(listenerIssue);

    const pool = this.transport.pool;
    const stats = { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount };
    const probe = await this.probe(resolved);
    if (probe.problem) problems.push(probe.problem);
    if (probe.groups) problems.push(...backlogProblems(probe.groups, resolved));

    const details = {
      listener,
      pool: { reachable: probe.reachable, ...stats },
      ...(probe.groups ? { groups: probe.groups } : {}),
    };
    if (problems.length === 0) return this.report(key, check.up(details));
    problems.sort((a, b) => PRIORITY.indexOf(a.reason) - PRIORITY.indexOf(b.reason));
    return this.report(key, check.down({ ...details, ...describeProblems(problems) }));
  }

  /**
   * Liveness: up unless the transport's LISTEN connection is closed. Answers from memory, never
   * from the database (that it answers at all shows the event loop turns), so a slow or
   * unreachable database never gets healthy pods restarted.
   */
  async isAlive<const Key extends string = 'postgres'>(
    key: Key = 'postgres' as Key,
  ): Promise<HealthIndicatorResult<Key>> {
    const check = this.healthIndicatorService.check(key);
    const listener = this.listenerDetails();
    const problem = listenerProblem(this.listener.status, Date.now(), Number.POSITIVE_INFINITY);
    if (!problem) return check.up({ listener });
    return check.down({ listener, ...describeProblems([problem]) });
  }

  private async probe(options: ResolvedHealthOptions): Promise<Probe> {
    let reachable = false;
    try {
      return await withClientWithin(this.transport.pool, options.timeoutMs, async (client) => {
        await client.query('SELECT 1');
        reachable = true;
        const { rows } = await client.query<BacklogRow>(this.queries.backlog, [options.countLimit]);
        return { reachable, groups: groupsOf(rows) };
      });
    } catch (error) {
      if (error instanceof CheckTimeoutError) {
        const message = healthMessages.timeout(options.timeoutMs, error.phase);
        // reachable stays true when SELECT 1 answered and only the backlog query was too slow.
        return { reachable, problem: { reason: 'timeout', message } };
      }
      const text = error instanceof Error ? error.message : String(error);
      return reachable
        ? {
            reachable,
            problem: { reason: 'query-failed', message: healthMessages.queryFailed(text) },
          }
        : {
            reachable,
            problem: { reason: 'unreachable', message: healthMessages.unreachable(text) },
          };
    }
  }

  private listenerDetails(): { state: string; since: string } {
    const { state, since } = this.listener.status;
    return { state, since: since.toISOString() };
  }

  private resolve(options: PostgresHealthOptions | undefined): ResolvedHealthOptions {
    if (options === undefined) return this.options;
    let resolved = this.resolved.get(options);
    if (!resolved) {
      resolved = resolveHealthOptions(options, this.options);
      this.resolved.set(options, resolved);
    }
    return resolved;
  }

  /** Logs transitions only: a probe every few seconds must not flood the log. */
  private report<Key extends string>(
    key: Key,
    result: HealthIndicatorResult<Key>,
  ): HealthIndicatorResult<Key> {
    const detail = result[key] as { status: 'up' | 'down'; message?: string };
    const previous = this.lastStatus.get(key);
    this.lastStatus.set(key, detail.status);
    if (detail.status === 'down' && previous !== 'down') {
      this.logger.warn(`Health check "${key}" is down: ${detail.message}`);
    } else if (detail.status === 'up' && previous === 'down') {
      this.logger.log(`Health check "${key}" is up again`);
    }
    return result;
  }
}

/** `fromEntries` defines own properties, so even a group named `__proto__` is reported as is. */
function groupsOf(rows: readonly BacklogRow[]): Record<string, GroupBacklog> {
  return Object.fromEntries(
    rows.map((row) => [
      row.group,
      {
        pending: row.pending,
        oldestPendingAgeMs:
          row.oldest_pending_age_ms === null ? null : Number(row.oldest_pending_age_ms),
        deadLetters: row.dead_letters,
      },
    ]),
  );
}
