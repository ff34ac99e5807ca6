import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientsModule } from '@nestjs/microservices';
import { PostgresTransport, PostgresTransportModule } from '../../lib/index.js';
import { databaseUrl, transportTimings } from '../service-options.js';
import { PaymentsController } from './payments.controller.js';

@Module({
  imports: [
    PostgresTransportModule.forRoot({
      connectionString: databaseUrl(),
      listener: transportTimings.listener,
    }),
    ClientsModule.registerAsync([
      {
        name: 'EVENTS',
        inject: [PostgresTransport],
        useFactory: (t: PostgresTransport) => t.clientOptions(),
      },
    ]),
  ],
  controllers: [PaymentsController],
})
class PaymentsModule {}

const app = await NestFactory.create(PaymentsModule, { logger: ['error', 'warn', 'log'] });
const { listener: _listener, ...timings } = transportTimings;
app.connectMicroservice({
  strategy: app.get(PostgresTransport).createServer({ group: 'payments', ...timings }),
});
app.enableShutdownHooks();
await app.startAllMicroservices();
await app.init();
process.send?.({ ready: 'payments' });
