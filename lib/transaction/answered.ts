import type pg from 'pg';

/** The parts of a node-postgres client this relies on, beyond its typed surface. */
interface ClientState {
  /** False while a statement sent on the connection still awaits its ReadyForQuery. */
  readonly readyForQuery?: unknown;
  /** Set once the connection has ended or failed: nothing more will be answered on it. */
  readonly _ended?: unknown;
  readonly _queryable?: unknown;
  on(event: 'drain' | 'end' | 'error', listener: () => void): unknown;
  off(event: 'drain' | 'end' | 'error', listener: () => void): unknown;
}

/** Whether `client` says when every statement sent on it has been answered. */
export function tracksReadyForQuery(client: pg.ClientBase): boolean {
  return typeof (client as unknown as ClientState).readyForQuery === 'boolean';
}

/**
 * Resolves once the server has answered everything sent on `client`, ReadyForQuery included.
 * node-postgres rejects a failed statement as soon as its ErrorResponse arrives; the
 * ReadyForQuery that carries the new transaction status can come in a later read, so until then
 * `getTransactionStatus()` still reports the status from before the failure. Also resolves if
 * the connection has ended or failed, or does meanwhile (the caller's next statement then fails).
 */
export function whenAnswered(client: pg.ClientBase): Promise<void> {
  const state = client as unknown as ClientState;
  if (state.readyForQuery !== false || state._ended === true || state._queryable === false) {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const done = () => {
      state.off('drain', done);
      state.off('end', done);
      state.off('error', done);
      resolve();
    };
    state.on('drain', done);
    state.on('end', done);
    state.on('error', done);
  });
}
