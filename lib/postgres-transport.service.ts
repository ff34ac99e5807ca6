import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import type pg from 'pg';
import { ClientPostgres } from './client/client-postgres.js';
import { CONNECTION_OPTION_KEYS } from './options/connection-options.interface.js';
import { acquireListener, type ListenerLease, type PostgresListener } from './listener/index.js';
import { ensureMigrated } from './migrate/ensure-migrated.js';
import type { ClientPostgresOptions } from './options/client-options.interface.js';
import { resolveConnection, type ResolvedConnection } from './options/resolve-connection.js';
import type { ServerPostgresOptions } from './options/server-options.interface.js';
import { rejectUnknownOptions } from './options/validate.js';
import {
  POSTGRES_TRANSPORT_OPTIONS,
  type PostgresTransportModuleOptions,
} from './postgres-transport.module-definition.js';
import { ServerPostgres } from './server/server-postgres.js';

type SharedKeys =
  | 'connectionString'
  | 'pool'
  | 'poolConfig'
  | 'schema'
  | 'migrationsRun'
  | 'preparedStatements'
  | 'wakeupIntervalMs';

/**
 * What `PostgresTransportModule` shares: one pool, one LISTEN connection, the migrated schema.
 * Servers and clients made here use them instead of opening their own.
 */
@Injectable()
export class PostgresTransport implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('PostgresTransport');
  readonly connection: ResolvedConnection;
  private lease: ListenerLease | undefined;

  constructor(
    @Inject(POSTGRES_TRANSPORT_OPTIONS) private readonly options: PostgresTransportModuleOptions,
  ) {
    rejectUnknownOptions(options, CONNECTION_OPTION_KEYS, 'PostgresTransportModule');
    this.connection = resolveConnection(options, 'nestjs-pg-transport');
  }

  /** The module's pool. */
  get pool(): pg.Pool {
    return this.connection.pool();
  }

  /** The process's shared LISTEN connection. */
  get listener(): PostgresListener {
    this.lease ??= acquireListener(this.connection.listener);
    return this.lease.listener;
  }

  async onModuleInit(): Promise<void> {
    if (this.connection.migrationsRun) await ensureMigrated(this.pool, this.connection.schemaName);
    void this.listener;
  }

  async onApplicationShutdown(): Promise<void> {
    await this.lease?.release();
    this.lease = undefined;
    if (this.connection.ownsPool) await this.pool.end();
  }

  /** A ServerPostgres on the module's pool: `app.connectMicroservice({ strategy })`. */
  createServer(options: Omit<ServerPostgresOptions, SharedKeys>): ServerPostgres {
    return new ServerPostgres({ ...options, ...this.shared() });
  }

  /** A ClientPostgres on the module's pool. */
  createClient(options: Omit<ClientPostgresOptions, SharedKeys> = {}): ClientPostgres {
    return new ClientPostgres({ ...options, ...this.shared() });
  }

  /**
   * Options for `ClientsModule.registerAsync`:
   * `useFactory: (transport: PostgresTransport) => transport.clientOptions()`.
   */
  clientOptions(options: Omit<ClientPostgresOptions, SharedKeys> = {}) {
    return { customClass: ClientPostgres, options: { ...options, ...this.shared() } };
  }

  private shared(): Pick<
    ServerPostgresOptions,
    SharedKeys | 'listenConnectionString' | 'listener'
  > {
    return {
      pool: this.pool,
      schema: this.connection.schemaName,
      // Migrations run once per pool, whichever of module, server or client starts first.
      migrationsRun: this.connection.migrationsRun,
      preparedStatements: this.connection.preparedStatements,
      wakeupIntervalMs: this.connection.wakeupIntervalMs,
      listenConnectionString: this.options.listenConnectionString,
      listener: this.options.listener,
    };
  }
}
