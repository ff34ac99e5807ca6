/**
 * Delay before retrying a failed message: capped exponential backoff with full jitter, so
 * messages that failed together (a database blip) do not all come back at the same instant.
 */
export function retryDelay(
  attempt: number,
  baseMs: number,
  capMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.max(1, Math.round(ceiling * random()));
}
