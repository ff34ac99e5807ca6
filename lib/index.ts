export { POSTGRES_TRANSPORT, POSTGRES_POOL } from './postgres.constants.js';
export { PostgresTransportModule } from './postgres-transport.module.js';
export type { PostgresTransportModuleOptions } from './postgres-transport.module-definition.js';
export { PostgresTransport } from './postgres-transport.service.js';
export { ServerPostgres } from './server/server-postgres.js';
export { ClientPostgres, type EmitResult } from './client/client-postgres.js';
export {
  PostgresRecord,
  PostgresRecordBuilder,
  type PostgresRecordOptions,
} from './client/postgres.record.js';
export { PostgresContext, type PostgresMessageInfo } from './ctx-host/postgres.context.js';
export { PostgresExceptionFilter } from './ctx-host/postgres-exception.filter.js';
export {
  PostgresStatus,
  type DeadLetterEvent,
  type PostgresClientEvents,
  type PostgresServerEvents,
} from './events/postgres.events.js';
export type { MessageCounters, MessageOutcome } from './events/message-outcome.events.js';
export type { PostgresConnectionOptions } from './options/connection-options.interface.js';
export type { ServerPostgresOptions } from './options/server-options.interface.js';
export type { ClientPostgresOptions } from './options/client-options.interface.js';
export { migrate, type MigrateOptions, type MigrateResult } from './migrate/migrate.js';
export { PostgresTransactionHost } from './transaction/postgres-transaction-host.js';
export {
  PostgresTransactionInterceptor,
  Transactional,
} from './transaction/postgres-transaction.interceptor.js';
export type { PoolTransaction } from './transaction/pool-transaction.js';
export { DeadLetterAdmin } from './admin/dead-letter-admin.js';
export {
  DEAD_LETTER_ADMIN_OPTIONS,
  type DeadLetterAdminOptions,
} from './admin/dead-letter-admin.options.js';
export type {
  DeadLetter,
  DeadLetterFilter,
  DeadLetterPage,
  DeadLetterSummary,
  ListDeadLettersOptions,
} from './admin/dead-letter.js';
export { InvalidArgumentError } from './admin/invalid-argument.error.js';
export { RetentionJob } from './retention/retention-job.js';
export {
  POSTGRES_RETENTION_OPTIONS,
  RETENTION_DEFAULTS,
  type RetentionOptions,
} from './retention/retention.options.js';
export * from './errors/index.js';
export * from './listener/index.js';
