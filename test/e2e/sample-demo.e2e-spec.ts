import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

describe('the sample shop demo', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    if (!existsSync('dist/sample/main.js')) {
      throw new Error('dist/sample/main.js is missing: run `npm run build` (npm test does)');
    }
    db = await createTestDatabase();
  });

  afterAll(async () => {
    await db.drop();
  });

  it('kills a worker, cuts every LISTEN connection, and still ships each paid order exactly once', async () => {
    const child = spawn(process.execPath, ['dist/sample/main.js', '--orders', '60'], {
      env: { ...process.env, DATABASE_URL: db.url, PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect({ code, tail: output.slice(-1500) }).toMatchObject({ code: 0 });
    expect(output).toContain('Killing shipping-1');
    expect(output).toMatch(/Cut [1-9]\d* LISTEN connections/);
    expect(output).toMatch(
      /GET \/health → 200 ok: listener \w+; payments 0 pending, shipping 0 pending/,
    );
    expect(output).toContain('Every paid order has exactly one shipment (60/60)');
  });
});
