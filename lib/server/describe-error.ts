/**
 * Text kept with a failed message. Nest's exception filters turn handler errors into plain
 * objects (`{ status, message }`), so those are read as well as Error instances.
 */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  if (typeof error === 'string') return error;
  try {
    return JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}
