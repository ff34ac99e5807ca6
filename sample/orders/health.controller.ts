import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { PostgresHealthIndicator } from '../../lib/health/index.js';

/** Readiness at /health (listener, pool, backlog per group), liveness at /health/live. */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly postgres: PostgresHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  ready() {
    return this.health.check([() => this.postgres.isHealthy()]);
  }

  @Get('live')
  @HealthCheck()
  live() {
    return this.health.check([() => this.postgres.isAlive()]);
  }
}
