import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { query } from './database.js';
import { renderTable, type Table } from './report.js';

const SETTINGS = [
  'fsync',
  'synchronous_commit',
  'wal_sync_method',
  'full_page_writes',
  'shared_buffers',
  'max_connections',
  'max_wal_size',
  'checkpoint_timeout',
  'commit_delay',
  'autovacuum',
];

function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'));
    return line?.split(':')[1]?.trim() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function packageVersion(name: string): string {
  try {
    const text = readFileSync(join(process.cwd(), 'node_modules', name, 'package.json'), 'utf8');
    return (JSON.parse(text) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function gitCommit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'lib'], { encoding: 'utf8' });
    return dirty.trim() ? `${head} with uncommitted changes in lib/` : head;
  } catch {
    return 'unknown';
  }
}

/** The machine, the server and the versions a run used, as Markdown. */
export async function describeEnvironment(serverUrl: string, throwaway: boolean): Promise<string> {
  const [{ version }] = await query<{ version: string }>(serverUrl, 'SELECT version()');
  const settings = await query<{ name: string; setting: string; unit: string | null }>(
    serverUrl,
    'SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1) ORDER BY name',
    [SETTINGS],
  );
  const show = async (name: string) =>
    (await query<Record<string, string>>(serverUrl, `SHOW ${name}`))[0][name];
  const machine: Table = {
    title: 'Machine and versions',
    head: ['', ''],
    rows: [
      ['CPU', `${availableParallelism()} × ${cpuModel()}`],
      ['Memory', `${(totalmem() / 2 ** 30).toFixed(1)} GiB`],
      [
        'Load average at start (1, 5, 15 min)',
        loadavg()
          .map((l) => l.toFixed(2))
          .join(', '),
      ],
      ['Node.js', process.version],
      ['PostgreSQL', `${version}${throwaway ? ' (throwaway server)' : ''}`],
      ['nestjs-pg-transport', `commit ${gitCommit()}`],
      ['pg-boss', packageVersion('pg-boss')],
      ['graphile-worker', packageVersion('graphile-worker')],
      ['pg', packageVersion('pg')],
    ],
  };
  const server: Table = {
    title: 'PostgreSQL settings',
    head: ['Setting', 'Value'],
    rows: await Promise.all(
      settings.map(async (s) => [s.name, s.unit ? await show(s.name) : s.setting]),
    ),
  };
  return `${renderTable(machine)}\n\n${renderTable(server)}`;
}
