/** Settings every sample service shares; the demo shortens the timings so recovery is quick to watch. */
export function databaseUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is not set (npm start sets it for every service)');
  return url;
}

export const transportTimings = {
  leaseMs: 2_000,
  sweepIntervalMs: 1_000,
  retryDelayMs: 200,
  maxRetryDelayMs: 2_000,
  listener: { heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 1_000 },
};
