// The benchmarks' WAL meter, against a throwaway server of its own with the durability the
// benchmarks run with (fsync and synchronous commit on), which the shared test server turns off.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { startThrowawayPostgres, type ThrowawayPostgres } from '#throwaway-postgres';
import { WalMeter } from '../../bench/support/resources.js';

const COMMITS = 20;

describe('WalMeter', () => {
  let server: ThrowawayPostgres;

  beforeAll(async () => {
    server = await startThrowawayPostgres();
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    await client.query('CREATE TABLE rows (n int)');
    await client.end();
  });

  afterAll(async () => {
    await server?.destroy();
  });

  /** Commits one row at a time on a connection that is closed before the meter stops. */
  async function commits(synchronous: 'on' | 'off') {
    const meter = await WalMeter.start(server.url);
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    await client.query(`SET synchronous_commit = ${synchronous}`);
    for (let n = 0; n < COMMITS; n++) await client.query('INSERT INTO rows VALUES ($1)', [n]);
    await client.end();
    return meter.stop();
  }

  it('counts one flush per durable commit, and the bytes they wrote', async () => {
    const wal = await commits('on');
    expect(wal).toBeDefined();
    // One commit after another: none can share a flush with the next.
    expect(wal!.syncs).toBeGreaterThanOrEqual(COMMITS);
    expect(wal!.records).toBeGreaterThanOrEqual(2 * COMMITS);
    expect(wal!.bytes).toBeGreaterThan(COMMITS * 50);
  });

  it('counts fewer flushes than commits when the commits do not wait for one', async () => {
    const wal = await commits('off');
    expect(wal!.records).toBeGreaterThanOrEqual(2 * COMMITS);
    expect(wal!.syncs).toBeLessThan(COMMITS / 2);
  });
});
