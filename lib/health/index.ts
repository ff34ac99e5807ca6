// Entry point of `nestjs-pg-transport/health`, kept apart from the main barrel because it
// imports @nestjs/terminus, an optional peer dependency.
export { PostgresHealthIndicator } from './postgres.health.js';
export {
  HEALTH_DEFAULTS,
  POSTGRES_HEALTH_OPTIONS,
  type GroupHealthThresholds,
  type PostgresHealthOptions,
} from './postgres-health.options.js';
export type { GroupBacklog, HealthReason } from './health-problems.js';
