import type pg from 'pg';

interface InUse {
  /** The first 'error' the connection emitted while checked out, if any. */
  error?: Error;
  readonly onError: (error: Error) => void;
}

/**
 * The connections the consume path has checked out: claims in flight and the batches they
 * handed their connection to. While a connection is recorded here it has an 'error' listener: a
 * checked-out connection that dies emits 'error', which unhandled would end the process (its
 * pending query rejects as well). A shutdown that outlives its timeout ends them all, so that
 * neither a handler nor a claim waiting on a lock can hold the pool open.
 */
export class ConsumeConnections {
  private readonly inUse = new Map<pg.PoolClient, InUse>();

  /** Records a connection just checked out of the pool. */
  add(client: pg.PoolClient): void {
    const entry: InUse = { onError: (error) => (entry.error ??= error) };
    client.on('error', entry.onError);
    this.inUse.set(client, entry);
  }

  /**
   * Returns a connection to the pool, or discards it when `error` (or an 'error' it emitted)
   * says it may be broken. A connection `abort()` already ended is left alone.
   */
  release(client: pg.PoolClient, error?: Error): void {
    const entry = this.inUse.get(client);
    if (!entry) return;
    this.inUse.delete(client);
    client.off('error', entry.onError);
    client.release(error ?? entry.error);
  }

  /**
   * Ends every connection in use. Their transactions roll back on the server (a batch's messages
   * come back after the lease) and their pending queries fail.
   */
  abort(reason: string): void {
    for (const [client, { onError }] of this.inUse) {
      client.off('error', onError);
      client.release(new Error(reason));
    }
    this.inUse.clear();
  }
}
