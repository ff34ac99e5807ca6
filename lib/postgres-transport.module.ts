import { Module } from '@nestjs/common';
import { DeadLetterAdmin } from './admin/dead-letter-admin.js';
import { PostgresListener } from './listener/index.js';
import { ConfigurableModuleClass } from './postgres-transport.module-definition.js';
import { POSTGRES_POOL } from './postgres.constants.js';
import { PostgresTransport } from './postgres-transport.service.js';
import { PostgresTransactionInterceptor } from './transaction/postgres-transaction.interceptor.js';
import { PostgresTransactionHost } from './transaction/postgres-transaction-host.js';

/**
 * Provides the pool, the shared LISTEN connection and the migrated schema:
 * `PostgresTransportModule.forRoot({ connectionString })` or `forRootAsync({ useFactory })`.
 * Global by default (`isGlobal: false` to scope it).
 */
@Module({
  providers: [
    PostgresTransport,
    {
      provide: POSTGRES_POOL,
      useFactory: (t: PostgresTransport) => t.pool,
      inject: [PostgresTransport],
    },
    {
      provide: PostgresListener,
      useFactory: (t: PostgresTransport) => t.listener,
      inject: [PostgresTransport],
    },
    PostgresTransactionHost,
    PostgresTransactionInterceptor,
    DeadLetterAdmin,
  ],
  exports: [
    DeadLetterAdmin,
    PostgresTransport,
    POSTGRES_POOL,
    PostgresListener,
    PostgresTransactionHost,
    PostgresTransactionInterceptor,
  ],
})
export class PostgresTransportModule extends ConfigurableModuleClass {}
