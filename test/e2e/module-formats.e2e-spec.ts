import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

describe('the built package', () => {
  it('loads from a CommonJS app through require(esm), by its package name', () => {
    if (!existsSync('dist/lib/index.js'))
      throw new Error('run `npm run build` first (npm test does)');
    const output = execFileSync(process.execPath, ['test/fixtures/cjs-consumer.cjs'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    expect(JSON.parse(output)).toEqual({ ok: true, transportId: 'Symbol(POSTGRES_TRANSPORT)' });
  });

  it('loads from an ES module app by its package name', () => {
    const output = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "const t = await import('nestjs-pg-transport'); console.log(typeof t.ServerPostgres, typeof t.migrate)",
      ],
      { encoding: 'utf8' },
    );
    expect(output.trim()).toBe('function function');
  });

  it('serves the health indicator from its own entry point', () => {
    const output = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "const h = await import('nestjs-pg-transport/health'); console.log(typeof h.PostgresHealthIndicator)",
      ],
      { encoding: 'utf8' },
    );
    expect(output.trim()).toBe('function');
  });
});
