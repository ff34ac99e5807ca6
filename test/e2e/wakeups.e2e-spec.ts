import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { lastValueFrom } from 'rxjs';
import pg from 'pg';
import { ClientPostgres, migrate } from '../../lib/index.js';
import { decodeHints, type WakeupHint } from '../../lib/wakeup/wakeup-notifier.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { query, startClient } from '../helpers/transport.js';
import { waitFor } from '../helpers/wait-for.js';

const CHANNEL = 'nestjs_transport:wake';

/** Groups with the longest names allowed: all their hints together exceed NOTIFY's 8000 bytes. */
const LONG_GROUPS = Array.from({ length: 60 }, (_, i) => `${i}-${'g'.repeat(190)}`);

describe('wake-ups: a lone emit notifies in its own statement, concurrent emits after commit', () => {
  let db: TestDatabase;
  let client: ClientPostgres;
  let listener: pg.Client;
  const payloads: string[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    await migrate(db.url);
    await query(
      db.url,
      `INSERT INTO nestjs_transport.subscriptions (pattern, kind, group_name)
       SELECT 'lone', 'event', 'billing' UNION ALL
       SELECT 'wide', 'event', unnest($1::text[])`,
      [LONG_GROUPS],
    );
    listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    listener.on('notification', ({ payload }) => payloads.push(payload ?? ''));
    await listener.query(`LISTEN "${CHANNEL}"`);
    client = await startClient(db.url);
  });

  beforeEach(() => {
    payloads.length = 0;
  });

  afterAll(async () => {
    await client.close();
    await listener.end();
    await db.drop();
  });

  const hints = (): WakeupHint[] => payloads.flatMap(decodeHints);

  it('sends the wake-up of a lone emit from the emitting statement itself', async () => {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const result = await lastValueFrom(client.emit('lone', { n: 1 }));
    expect(result).toEqual({ recipients: ['billing'] });
    await waitFor(() => payloads.length > 0);
    // The statement's own json_build_array formatting: not the client's coalesced encoding.
    expect(payloads).toEqual(['[["billing", "lone"]]']);
  });

  it('coalesces the wake-ups of concurrent emits into few NOTIFYs sent after commit', async () => {
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, n) => lastValueFrom(client.emit('lone', { n }))),
    );
    expect(results.every((r) => r.recipients.length === 1)).toBe(true);
    await waitFor(() => hints().length > 0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Most emits overlapped, so their hints were merged: far fewer NOTIFYs than emits.
    expect(payloads.length).toBeLessThan(10);
    expect(payloads.filter((p) => p === '[["billing","lone"]]').length).toBeGreaterThan(0);
    expect(new Set(hints().map((h) => `${h.recipient}/${h.pattern}`))).toEqual(
      new Set(['billing/lone']),
    );
  });

  it('spaces the NOTIFYs after commit by wakeupIntervalMs, and still sends the last hint', async () => {
    /** The notifier's encoding; a lone emit's own statement formats its hint with a space. */
    const AFTER_COMMIT = '[["billing","lone"]]';
    /** Emits one after another for `ms`; counts the NOTIFYs that reached the listener. */
    const notifiesWhileEmitting = async (emitter: ClientPostgres, ms: number) => {
      payloads.length = 0;
      const started = Date.now();
      let emits = 0;
      while (Date.now() < started + ms) {
        await lastValueFrom(emitter.emit('lone', { n: emits++ }));
      }
      const elapsedMs = Date.now() - started;
      // The hint of the last emit arrives, at most one interval after it.
      await waitFor(() => payloads.length > 0);
      await new Promise((resolve) => setTimeout(resolve, 250));
      expect(new Set(hints().map((h) => `${h.recipient}/${h.pattern}`))).toEqual(
        new Set(['billing/lone']),
      );
      const afterCommit = payloads.filter((p) => p === AFTER_COMMIT).length;
      return { all: payloads.length, afterCommit, emits, elapsedMs };
    };
    const spaced = await startClient(db.url, { wakeupIntervalMs: 100 });
    try {
      const unspaced = await notifiesWhileEmitting(client, 400);
      const atInterval = await notifiesWhileEmitting(spaced, 400);
      // Back to back, nearly every emit's commit sends its own NOTIFY.
      expect(unspaced.emits).toBeGreaterThan(20);
      expect(unspaced.all).toBeGreaterThan(10);
      // 100 ms apart: at most one after-commit NOTIFY per interval while emitting, plus the
      // last one. (An emit that finds the writer idle for 10 ms carries its own NOTIFY in its
      // statement, as sparse traffic does; those are not spaced.)
      expect(atInterval.emits).toBeGreaterThan(20);
      expect(atInterval.afterCommit).toBeGreaterThanOrEqual(1);
      expect(atInterval.afterCommit).toBeLessThanOrEqual(
        Math.floor(atInterval.elapsedMs / 100) + 2,
      );
      expect(atInterval.afterCommit).toBeLessThan(unspaced.all / 2);
    } finally {
      await spaced.close();
    }
  });

  it('wakes 60 groups with long names from a lone emit, each NOTIFY under the limit', async () => {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const result = await lastValueFrom(client.emit('wide', { n: 1 }));
    expect(result.recipients.sort()).toEqual([...LONG_GROUPS].sort());
    await waitFor(() => hints().length === LONG_GROUPS.length);
    expect(new Set(hints().map((h) => h.recipient))).toEqual(new Set(LONG_GROUPS));
    for (const payload of payloads) expect(Buffer.byteLength(payload)).toBeLessThan(8_000);
  });

  it('wakes 60 groups with long names from emitStatement inside a foreign transaction', async () => {
    const { text, values } = client.emitStatement('wide', { n: 2 });
    const connection = new pg.Client({ connectionString: db.url });
    await connection.connect();
    try {
      await connection.query('BEGIN');
      const inserted = await connection.query(text, values);
      expect(inserted.rowCount).toBe(LONG_GROUPS.length);
      await connection.query('COMMIT');
    } finally {
      await connection.end();
    }
    await waitFor(() => hints().length === LONG_GROUPS.length);
    expect(new Set(hints().map((h) => h.recipient))).toEqual(new Set(LONG_GROUPS));
  });
});
