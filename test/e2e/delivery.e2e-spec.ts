import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, type INestMicroservice } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import { ClientPostgres, POSTGRES_TRANSPORT, PostgresContext } from '../../lib/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { query, startClient, startServer } from '../helpers/transport.js';
import { waitFor } from '../helpers/wait-for.js';

const handled: Array<{ group: string; instance: number; id: number }> = [];

function auditController(group: string, instance: number) {
  @Controller()
  class AuditController {
    @EventPattern<string>('order.paid', POSTGRES_TRANSPORT)
    paid(@Payload() order: { id: number }, @Ctx() ctx: PostgresContext) {
      expect(ctx.getGroup()).toBe(group);
      handled.push({ group, instance, id: order.id });
    }
  }
  return AuditController;
}

describe('delivery: fan-out across groups, competition inside a group', () => {
  let db: TestDatabase;
  let client: ClientPostgres;
  const apps: INestMicroservice[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    for (const [group, instance] of [
      ['billing', 1],
      ['billing', 2],
      ['audit', 1],
    ] as const) {
      // The audit group runs without prepared statements, as behind an old PgBouncer.
      const { app } = await startServer(db.url, [auditController(group, instance)], {
        group,
        batchSize: 1,
        preparedStatements: group !== 'audit',
      });
      apps.push(app);
    }
    client = await startClient(db.url);
  });

  afterAll(async () => {
    await client.close();
    for (const app of apps) await app.close();
    await db.drop();
  });

  it('delivers each event once to every subscribed group, once within each group', async () => {
    const count = 200;
    await Promise.all(
      Array.from({ length: count }, (_, i) => lastValueFrom(client.emit('order.paid', { id: i }))),
    );
    await waitFor(() => handled.length >= 2 * count, { message: 'every copy handled' });
    for (const group of ['billing', 'audit']) {
      const ids = handled.filter((h) => h.group === group).map((h) => h.id);
      expect(ids.sort((a, b) => a - b)).toEqual(Array.from({ length: count }, (_, i) => i));
    }
    // Both billing instances took part: they compete for the group's copies.
    const instances = new Set(handled.filter((h) => h.group === 'billing').map((h) => h.instance));
    expect(instances).toEqual(new Set([1, 2]));
    // A handler returns before its consume commits: wait for both groups' commits.
    const rows = await waitFor(async () => {
      const counts = await query(
        db.url,
        `SELECT recipient, count(*)::int AS n FROM nestjs_transport.messages
         WHERE consumed_at IS NOT NULL GROUP BY recipient ORDER BY recipient`,
      );
      return counts.every((c) => c.n >= count) && counts.length === 2 ? counts : undefined;
    });
    expect(rows).toEqual([
      { recipient: 'audit', n: count },
      { recipient: 'billing', n: count },
    ]);
  });
});
