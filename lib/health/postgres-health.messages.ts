/**
 * Every text the health indicator reports, in one place. Each says what is wrong and, where it
 * helps, where to look; none includes a connection string.
 */
export const healthMessages = {
  timeout: (timeoutMs: number, phase: 'checkout' | 'query') =>
    phase === 'checkout'
      ? `no pooled connection became free within ${timeoutMs} ms (pool exhausted or database unreachable)`
      : `PostgreSQL did not answer within ${timeoutMs} ms`,

  unreachable: (error: string) => `the pool could not run SELECT 1: ${error}`,

  queryFailed: (error: string) =>
    `the backlog query failed: ${error} (are the transport's migrations applied?)`,

  listenerDown: (state: string, downMs: number, maxMs: number, error?: string) =>
    `the LISTEN connection has been ${state} for ${downMs} ms (limit ${maxMs} ms)` +
    (error ? `: ${error}` : ''),

  listenerClosed: () => 'the LISTEN connection is closed: the transport has shut down',

  backlog: (group: string, ageMs: number, maxMs: number) =>
    `group "${group}": the oldest pending message has waited ${ageMs} ms (limit ${maxMs} ms)`,

  deadLetters: (group: string, count: number, max: number) =>
    `group "${group}" holds ${count} dead letters (limit ${max})`,

  invalidOption: (error: string) => error,
} as const;
