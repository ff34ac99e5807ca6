import { InvalidOptionError } from '../errors/invalid-option.error.js';

/** Reads an optional integer option, applying its default and bounds. */
export function integerOption(
  option: string,
  value: unknown,
  fallback: number,
  { min = 0, max = Number.MAX_SAFE_INTEGER }: { min?: number; max?: number } = {},
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(
      option,
      `expected an integer from ${min} to ${max}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** Reads an optional boolean option. */
export function booleanOption(option: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') {
    throw new InvalidOptionError(option, `expected true or false, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Reads a required, non-empty string option. */
export function requiredString(option: string, value: unknown, example: string): string {
  if (typeof value !== 'string' || value.trim().length === 0) {
    throw new InvalidOptionError(option, `expected a non-empty string, e.g. ${example}`);
  }
  return value;
}

/** Rejects option names the caller does not know, catching typos such as `grop`. */
export function rejectUnknownOptions(
  options: object,
  known: readonly string[],
  where: string,
): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new InvalidOptionError(key, `not an option of ${where}; known: ${known.join(', ')}`);
    }
  }
}
