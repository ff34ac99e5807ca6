import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ServerPostgres } from '../../lib/index.js';
import { databaseUrl, transportTimings } from '../service-options.js';
import { ShippingController } from './shipping.controller.js';

@Module({ controllers: [ShippingController] })
class ShippingModule {}

// A standalone consumer: ServerPostgres on its own pool, no HTTP.
const app = await NestFactory.createMicroservice(ShippingModule, {
  strategy: new ServerPostgres({
    connectionString: databaseUrl(),
    group: 'shipping',
    ...transportTimings,
  }),
  logger: ['error', 'warn', 'log'],
});
app.enableShutdownHooks();
await app.listen();
process.send?.({ ready: 'shipping' });
