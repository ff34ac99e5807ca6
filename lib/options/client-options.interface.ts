import type pg from 'pg';
import type { ProducerDeserializer, ProducerSerializer } from '@nestjs/microservices';
import type { PostgresConnectionOptions } from './connection-options.interface.js';

/** Options of `ClientPostgres`. Every default is listed here and applied in one place. */
export interface ClientPostgresOptions extends PostgresConnectionOptions {
  /** How long `send` waits for a reply before failing with ReplyTimeoutError. Default 30000 ms. */
  replyTimeoutMs?: number;
  /** Largest serialized payload `emit`/`send` accept. Default 16 MiB (PostgreSQL allows 1 GB). */
  maxPayloadBytes?: number;
  /** Interval of the fallback check for replies while requests are pending. Default 1000 ms. */
  replyPollIntervalMs?: number;
  /**
   * Returns the node-postgres client of a transaction managed elsewhere (e.g. by
   * @nestjs-cls/transactional), or undefined outside one. Emits then join that transaction, as
   * with `PostgresTransactionHost.runWith`. Await such emits before the transaction commits.
   */
  externalTransaction?: () => pg.ClientBase | undefined;
  serializer?: ProducerSerializer;
  deserializer?: ProducerDeserializer;
}

export const CLIENT_OPTION_KEYS = [
  'replyTimeoutMs',
  'maxPayloadBytes',
  'replyPollIntervalMs',
  'externalTransaction',
  'serializer',
  'deserializer',
] as const;
