import { PostgresTransportError } from './postgres-transport.error.js';

/** No reply arrived for a `send` within the reply timeout. */
export class ReplyTimeoutError extends PostgresTransportError {
  constructor(
    readonly pattern: string,
    readonly timeoutMs: number,
  ) {
    super(
      `No reply to "${pattern}" within ${timeoutMs} ms. Check that a ServerPostgres serving this ` +
        `pattern is running, or raise the "replyTimeoutMs" option.`,
    );
  }
}
