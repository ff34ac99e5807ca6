import type { Logger } from '@nestjs/common';
import type pg from 'pg';
import type { MessageStatements } from '../sql/message.queries.js';

/**
 * Warns once per pattern when an emit stored nothing because no group subscribes to it: the
 * likely cause of an event that seems lost is that its consumer never started.
 */
export class UnsubscribedPatterns {
  private readonly warned = new Set<string>();

  constructor(
    private readonly pool: () => pg.Pool,
    private readonly statements: MessageStatements,
    private readonly logger: Logger,
  ) {}

  /** Called when an emit of `pattern` got no row: a duplicate key, or no group at all. */
  async check(pattern: string): Promise<void> {
    if (this.warned.has(pattern)) return;
    const { rows } = await this.pool().query<{ subscribed: boolean }>(
      this.statements.hasEventSubscriber([pattern]),
    );
    if (rows[0].subscribed) return;
    this.warned.add(pattern);
    this.logger.warn(
      `No group subscribes to "${pattern}", so the event was not stored. Start a ServerPostgres ` +
        `with a handler for it once; from then on its events wait for it.`,
    );
  }
}
