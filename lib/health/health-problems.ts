import { ListenerState, type ListenerStatus } from '../listener/index.js';
import { healthMessages } from './postgres-health.messages.js';
import type { ResolvedHealthOptions } from './postgres-health.options.js';

/** Why a check is down; `reason` of the first problem found is reported. */
export type HealthReason =
  | 'invalid-option'
  | 'listener-closed'
  | 'timeout'
  | 'unreachable'
  | 'query-failed'
  | 'listener-down'
  | 'backlog'
  | 'dead-letters';

export interface HealthProblem {
  readonly reason: HealthReason;
  readonly message: string;
}

/** What `isHealthy` reports per consumer group. */
export interface GroupBacklog {
  /** Rows neither consumed nor dead (in flight and scheduled retries included), up to `countLimit`. */
  pending: number;
  /** How long the most overdue pending row has been due, or null when nothing is pending. */
  oldestPendingAgeMs: number | null;
  /** Dead letters, up to `countLimit`. */
  deadLetters: number;
}

/** A listener that has not been connected for longer than allowed is a problem. */
export function listenerProblem(
  status: ListenerStatus,
  now: number,
  maxDownMs: number,
): HealthProblem | undefined {
  if (status.state === ListenerState.Connected) return undefined;
  if (status.state === ListenerState.Closed) {
    return { reason: 'listener-closed', message: healthMessages.listenerClosed() };
  }
  const downMs = Math.max(0, now - status.since.getTime());
  if (downMs <= maxDownMs) return undefined;
  return {
    reason: 'listener-down',
    message: healthMessages.listenerDown(status.state, downMs, maxDownMs, status.error?.message),
  };
}

/** Groups over their pending-age or dead-letter thresholds (per-group overrides first). */
export function backlogProblems(
  groups: Readonly<Record<string, GroupBacklog>>,
  options: ResolvedHealthOptions,
): HealthProblem[] {
  const problems: HealthProblem[] = [];
  for (const [group, backlog] of Object.entries(groups)) {
    const own = options.groups.get(group);
    const maxAge =
      own?.maxPendingAgeMs !== undefined ? own.maxPendingAgeMs : options.maxPendingAgeMs;
    const maxDead = own?.maxDeadLetters !== undefined ? own.maxDeadLetters : options.maxDeadLetters;
    const age = backlog.oldestPendingAgeMs;
    if (maxAge !== null && age !== null && age > maxAge) {
      problems.push({ reason: 'backlog', message: healthMessages.backlog(group, age, maxAge) });
    }
    if (maxDead !== null && backlog.deadLetters > maxDead) {
      problems.push({
        reason: 'dead-letters',
        message: healthMessages.deadLetters(group, backlog.deadLetters, maxDead),
      });
    }
  }
  return problems;
}

/** The `reason` and `message` fields of a down result. */
export function describeProblems(problems: readonly HealthProblem[]): {
  reason: HealthReason;
  message: string;
} {
  return { reason: problems[0]!.reason, message: problems.map((p) => p.message).join('; ') };
}
