import { describe, expect, it } from '@jest/globals';
import { PostgresTransport } from '../../lib/index.js';

describe('PostgresTransport', () => {
  it('hands its connection settings, wakeupIntervalMs included, to the clients and servers it makes', async () => {
    const transport = new PostgresTransport({
      connectionString: 'postgres://app@db.internal:6543/shop',
      preparedStatements: false,
      wakeupIntervalMs: 25,
    });
    try {
      const { options } = transport.clientOptions({ replyTimeoutMs: 5_000 });
      expect(options).toMatchObject({
        pool: transport.pool,
        schema: 'nestjs_transport',
        preparedStatements: false,
        wakeupIntervalMs: 25,
        replyTimeoutMs: 5_000,
      });
    } finally {
      await transport.pool.end();
    }
  });
});
