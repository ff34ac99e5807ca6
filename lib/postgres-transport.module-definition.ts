import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { PostgresConnectionOptions } from './options/connection-options.interface.js';

/** Options of `PostgresTransportModule.forRoot`: where the tables live and how to reach them. */
export type PostgresTransportModuleOptions = PostgresConnectionOptions;

export const {
  ConfigurableModuleClass,
  MODULE_OPTIONS_TOKEN: POSTGRES_TRANSPORT_OPTIONS,
  OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<PostgresTransportModuleOptions>()
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: true }, (definition, extras) => ({
    ...definition,
    global: extras.isGlobal,
  }))
  .build();
