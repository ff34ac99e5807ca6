import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientsModule } from '@nestjs/microservices';
import { TerminusModule } from '@nestjs/terminus';
import { PostgresHealthIndicator } from '../../lib/health/index.js';
import { PostgresTransport, PostgresTransportModule, RetentionJob } from '../../lib/index.js';
import { databaseUrl, transportTimings } from '../service-options.js';
import { HealthController } from './health.controller.js';
import { OrdersController } from './orders.controller.js';
import { OrdersService } from './orders.service.js';

@Module({
  imports: [
    PostgresTransportModule.forRoot({
      connectionString: databaseUrl(),
      listener: transportTimings.listener,
    }),
    TerminusModule,
    ClientsModule.registerAsync([
      {
        name: 'EVENTS',
        inject: [PostgresTransport],
        useFactory: (t: PostgresTransport) => t.clientOptions({ replyTimeoutMs: 5_000 }),
      },
    ]),
  ],
  controllers: [OrdersController, HealthController],
  providers: [OrdersService, PostgresHealthIndicator, RetentionJob],
})
class OrdersModule {}

const app = await NestFactory.create(OrdersModule, { logger: ['error', 'warn', 'log'] });
app.enableShutdownHooks();
await app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
process.send?.({ ready: 'orders', url: await app.getUrl() });
