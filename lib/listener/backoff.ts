import type { ListenerReconnectOptions } from './listener-options.js';

export type BackoffSettings = Required<
  Pick<ListenerReconnectOptions, 'initialDelayMs' | 'maxDelayMs'>
>;

/**
 * Upper bound of the delay before reconnect attempt `attempt` (from 1): the exponential
 * `initialDelayMs * 2^attempt`, capped at `maxDelayMs`.
 */
export function backoffCeiling(attempt: number, settings: BackoffSettings): number {
  return Math.min(settings.maxDelayMs, settings.initialDelayMs * 2 ** attempt);
}

/**
 * Delay before reconnect attempt `attempt`: "full jitter", uniform between `initialDelayMs` and
 * the capped exponential ceiling.
 *
 * Why full jitter rather than decorrelated: when a database restarts, every process in the fleet
 * loses its listener at the same instant. Full jitter spreads their retries uniformly over the
 * whole window at every attempt, including once the ceiling is capped, where a long outage
 * leaves everyone; decorrelated jitter (`min(cap, random(base, 3 * previous))`) pins two
 * thirds of the draws to exactly `maxDelayMs` once it reaches the cap, so the herd lines up
 * again. The floor is `initialDelayMs` instead of 0, so an immediate failure (connection refused)
 * can never turn into a tight loop.
 */
export function backoffDelay(
  attempt: number,
  settings: BackoffSettings,
  random: () => number,
): number {
  return jittered(settings.initialDelayMs, backoffCeiling(attempt, settings), random);
}

/**
 * Delay after an error that only an operator can fix (wrong password, missing database): keep
 * trying, so the fix heals without a restart, but at the slowest pace, jittered over the top half
 * of the cap so a fleet with a bad password does not flood the server's authentication log.
 */
export function fatalBackoffDelay(settings: BackoffSettings, random: () => number): number {
  const floor = Math.max(settings.initialDelayMs, settings.maxDelayMs / 2);
  return jittered(floor, settings.maxDelayMs, random);
}

function jittered(floor: number, ceiling: number, random: () => number): number {
  // Clamped, so an injected source that returns 1 or garbage cannot leave the window.
  const r = Math.min(Math.max(Number(random()) || 0, 0), 1);
  return floor + r * (ceiling - floor);
}

/** Counts consecutive failed attempts and hands out the delay before the next one. */
export class Backoff {
  private failures = 0;

  constructor(
    private readonly settings: BackoffSettings,
    private readonly random: () => number,
  ) {}

  /** Records a failure; returns the attempt number about to be made and the delay before it. */
  next(fatal: boolean): { attempt: number; delayMs: number } {
    const attempt = ++this.failures;
    const delayMs = fatal
      ? fatalBackoffDelay(this.settings, this.random)
      : backoffDelay(attempt, this.settings, this.random);
    return { attempt, delayMs };
  }

  /** Starts again from attempt 1: called after the connection was stable for a while. */
  reset(): void {
    this.failures = 0;
  }
}
