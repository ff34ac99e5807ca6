/** A `PostgresListener` option is missing, malformed or contradicts another one. */
export class InvalidListenerOptionError extends Error {
  override readonly name = 'InvalidListenerOptionError';

  constructor(
    /** Path of the offending option, e.g. `reconnect.maxDelayMs`. */
    readonly option: string,
    problem: string,
  ) {
    super(`Invalid PostgresListener option \`${option}\`: ${problem}`);
  }
}

/** A channel name PostgreSQL would truncate or reject. */
export class InvalidChannelNameError extends Error {
  override readonly name = 'InvalidChannelNameError';

  constructor(
    readonly channel: string,
    problem: string,
  ) {
    super(`Invalid LISTEN channel name ${JSON.stringify(channel)}: ${problem}`);
  }
}

/** `start()` was called on a listener that has already been closed. */
export class ListenerClosedError extends Error {
  override readonly name = 'ListenerClosedError';

  constructor() {
    super('This PostgresListener has been closed; create (or acquire) a new one.');
  }
}

/**
 * The server did not answer in time. Raised by the listener itself, so it carries Node's
 * `ETIMEDOUT` code and is classified like any other transient network failure.
 */
export class ListenerTimeoutError extends Error {
  override readonly name = 'ListenerTimeoutError';
  readonly code = 'ETIMEDOUT';

  constructor(what: string, timeoutMs: number) {
    super(`${what} not answered within ${timeoutMs} ms; treating the connection as dead`);
  }
}
