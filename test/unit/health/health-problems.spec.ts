import { describe, expect, it } from '@jest/globals';
import {
  backlogProblems,
  describeProblems,
  listenerProblem,
} from '../../../lib/health/health-problems.js';
import { resolveHealthOptions } from '../../../lib/health/postgres-health.options.js';
import { ListenerState } from '../../../lib/listener/index.js';

const at = (ms: number) => new Date(ms);

describe('listenerProblem', () => {
  it('tolerates a listener down for up to maxDownMs', () => {
    const status = { state: ListenerState.Reconnecting, since: at(1_000) };
    expect(listenerProblem(status, 2_000, 1_000)).toBeUndefined();
    expect(listenerProblem(status, 2_001, 1_000)).toEqual({
      reason: 'listener-down',
      message: 'the LISTEN connection has been reconnecting for 1001 ms (limit 1000 ms)',
    });
  });

  it('counts a first connection that never succeeds, and reports the error', () => {
    const status = {
      state: ListenerState.Connecting,
      since: at(0),
      error: { message: 'password authentication failed', fatal: true },
    };
    expect(listenerProblem(status, 5_000, 1_000)?.message).toBe(
      'the LISTEN connection has been connecting for 5000 ms (limit 1000 ms): password authentication failed',
    );
  });

  it('is never a problem when connected, always one when closed', () => {
    expect(
      listenerProblem({ state: ListenerState.Connected, since: at(0) }, 1e9, 0),
    ).toBeUndefined();
    expect(
      listenerProblem({ state: ListenerState.Closed, since: at(0) }, 0, Infinity)?.reason,
    ).toBe('listener-closed');
  });
});

describe('backlogProblems', () => {
  const groups = {
    orders: { pending: 3, oldestPendingAgeMs: 5_000, deadLetters: 2 },
    audit: { pending: 1, oldestPendingAgeMs: 90_000, deadLetters: 0 },
    idle: { pending: 0, oldestPendingAgeMs: null, deadLetters: 0 },
  };

  it('applies global thresholds', () => {
    const options = resolveHealthOptions({ maxPendingAgeMs: 60_000, maxDeadLetters: 1 });
    expect(backlogProblems(groups, options)).toEqual([
      { reason: 'dead-letters', message: 'group "orders" holds 2 dead letters (limit 1)' },
      {
        reason: 'backlog',
        message: 'group "audit": the oldest pending message has waited 90000 ms (limit 60000 ms)',
      },
    ]);
  });

  it('lets a group override or switch off a threshold', () => {
    const options = resolveHealthOptions({
      maxPendingAgeMs: 1_000,
      groups: { audit: { maxPendingAgeMs: null }, orders: { maxPendingAgeMs: 10_000 } },
    });
    expect(backlogProblems(groups, options)).toEqual([]);
  });

  it('reports the first reason and every message', () => {
    expect(
      describeProblems([
        { reason: 'backlog', message: 'a' },
        { reason: 'dead-letters', message: 'b' },
      ]),
    ).toEqual({ reason: 'backlog', message: 'a; b' });
  });
});
