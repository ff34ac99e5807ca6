import type pg from 'pg';

/** The deadline of `withClientWithin` passed; `phase` says what it was waiting for. */
export class CheckTimeoutError extends Error {
  constructor(readonly phase: 'checkout' | 'query') {
    super(`timed out waiting for ${phase === 'checkout' ? 'a pooled connection' : 'an answer'}`);
  }
}

/**
 * Runs `work` on a pooled connection, checkout included, within `timeoutMs`; past that it
 * rejects with `CheckTimeoutError` and leaks nothing. A connection that arrives after the
 * deadline goes straight back to the pool. A connection whose query is still running is
 * destroyed rather than returned: on a half-open network its query would never end, and the
 * connection would hold a pool slot until TCP gave up.
 */
export function withClientWithin<T>(
  pool: pg.Pool,
  timeoutMs: number,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let client: pg.PoolClient | undefined;
    let settled = false;
    const settle = (outcome: () => void) => {
      clearTimeout(timer);
      if (settled) return;
      settled = true;
      outcome();
    };
    const timer = setTimeout(() => {
      settle(() => reject(new CheckTimeoutError(client ? 'query' : 'checkout')));
      if (client) {
        // Ends the stuck query: `work` rejects, and the finally below discards the connection.
        // The client then emits 'error', which nobody else listens to while it is checked out:
        // unheard, it would crash the process.
        client.on('error', () => undefined);
        client.connection.stream.destroy();
      }
    }, timeoutMs);
    timer.unref();

    pool.connect().then(
      async (checkedOut) => {
        if (settled) return checkedOut.release();
        client = checkedOut;
        let broken: Error | undefined;
        try {
          const result = await work(checkedOut);
          settle(() => resolve(result));
        } catch (error) {
          broken = error instanceof Error ? error : new Error(String(error));
          settle(() => reject(error));
        } finally {
          // A connection that failed or timed out is discarded, not reused.
          checkedOut.release(broken);
        }
      },
      (error: unknown) => settle(() => reject(error)),
    );
  });
}
