import { Logger, type LoggerService } from '@nestjs/common';

/** Warnings and errors to stderr, nothing else: stdout carries only the results. */
export const benchLogger: LoggerService = {
  log: () => undefined,
  warn: (message: unknown, context?: string) => console.error(`warn [${context}] ${message}`),
  error: (message: unknown, ...rest: unknown[]) =>
    console.error(`error [${rest[rest.length - 1] ?? ''}] ${message}`),
};

/** Routes every Nest Logger of this process (the library's included) to `benchLogger`. */
export function quietNestLogs(): void {
  Logger.overrideLogger(benchLogger);
}
