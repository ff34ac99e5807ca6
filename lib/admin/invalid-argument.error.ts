import { PostgresTransportError } from '../errors/postgres-transport.error.js';

/** An argument of an admin call failed validation; nothing was read or changed. */
export class InvalidArgumentError extends PostgresTransportError {
  constructor(
    readonly argument: string,
    problem: string,
  ) {
    super(`Invalid argument "${argument}": ${problem}`);
  }
}
