import { PostgresTransportError } from './postgres-transport.error.js';

/** A payload could not be written: it cannot be serialized as JSON, or it is too large. */
export class PayloadError extends PostgresTransportError {}

export class PayloadTooLargeError extends PayloadError {
  constructor(
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(
      `Payload is ${bytes} bytes, over the ${limit}-byte limit. Send a reference to large data ` +
        `instead, or raise the "maxPayloadBytes" option.`,
    );
  }
}
