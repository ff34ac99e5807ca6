import type { ConsumerDeserializer, ConsumerSerializer } from '@nestjs/microservices';
import type { PostgresConnectionOptions } from './connection-options.interface.js';

/** Options of `ServerPostgres`. Every default is listed here and applied in one place. */
export interface ServerPostgresOptions extends PostgresConnectionOptions {
  /**
   * The consumer group. Every group subscribed to a pattern gets its own copy of each event;
   * instances of one group compete, and exactly one handles each copy. Required.
   */
  group: string;
  /** How many batches are handled at once, each on its own connection. Default 4. */
  concurrency?: number;
  /** How many messages one transaction claims and commits together, 1 to 64. Default 50. */
  batchSize?: number;
  /** Attempts before a failing event is dead-lettered. Default 5. */
  maxAttempts?: number;
  /** First retry delay; doubles each attempt, with full jitter. Default 1000 ms. */
  retryDelayMs?: number;
  /** Cap of the retry delay. Default 60000 ms. */
  maxRetryDelayMs?: number;
  /**
   * How long a claimed message stays invisible to other consumers if its consumer dies without
   * rolling back (killed process, lost connection). Default 30000 ms.
   */
  leaseMs?: number;
  /** Interval of the fallback sweep that catches anything a wake-up missed. Default 5000 ms. */
  sweepIntervalMs?: number;
  /**
   * How long `close()` lets in-flight handlers and claims finish before ending their
   * connections (their messages return after the lease). Default 10000 ms.
   */
  shutdownTimeoutMs?: number;
  serializer?: ConsumerSerializer;
  deserializer?: ConsumerDeserializer;
}

export const SERVER_OPTION_KEYS = [
  'group',
  'concurrency',
  'batchSize',
  'maxAttempts',
  'retryDelayMs',
  'maxRetryDelayMs',
  'leaseMs',
  'sweepIntervalMs',
  'shutdownTimeoutMs',
  'serializer',
  'deserializer',
] as const;
