import type pg from 'pg';

/**
 * The connections the consume path has checked out: claims in flight and the batches they
 * handed their connection to. A shutdown that outlives its timeout ends them all, so that
 * neither a handler nor a claim waiting on a lock can hold the pool open.
 */
export class ConsumeConnections {
  private readonly inUse = new Set<pg.PoolClient>();

  /** Records a connection just checked out of the pool. */
  add(client: pg.PoolClient): void {
    this.inUse.add(client);
  }

  /**
   * Returns a connection to the pool, or discards it when `error` says it may be broken. A
   * connection `abort()` already ended is left alone.
   */
  release(client: pg.PoolClient, error?: Error): void {
    if (this.inUse.delete(client)) client.release(error);
  }

  /**
   * Ends every connection in use. Their transactions roll back on the server (a batch's messages
   * come back after the lease) and their pending queries fail.
   */
  abort(reason: string): void {
    for (const client of this.inUse) client.release(new Error(reason));
    this.inUse.clear();
  }
}
