import { PostgresTransportError } from './postgres-transport.error.js';

/** An option failed validation at start-up. The message names the option and how to fix it. */
export class InvalidOptionError extends PostgresTransportError {
  constructor(
    readonly option: string,
    problem: string,
  ) {
    super(`Invalid option "${option}": ${problem}`);
  }
}
