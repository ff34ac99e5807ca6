import pg from 'pg';

/**
 * Names the server a listener connects to as `user@host:port/database`, resolving what the
 * options leave out the way `pg` does (PG* environment variables, then `pg.defaults`). The
 * result is both the registry key and the label in logs, so it never includes the password.
 */
export function describeTarget(options: {
  connectionString?: string;
  connection?: pg.ClientConfig;
}): string {
  const parts = options.connectionString
    ? fromConnectionString(options.connectionString)
    : fromConfig(options.connection ?? {});
  const user = parts.user || process.env.PGUSER || pg.defaults.user || '';
  const host = parts.host || process.env.PGHOST || pg.defaults.host || 'localhost';
  const port = parts.port || process.env.PGPORT || String(pg.defaults.port ?? 5432);
  const database = parts.database || process.env.PGDATABASE || pg.defaults.database || user;
  return `${user}@${host}:${port}/${database}`;
}

interface TargetParts {
  user?: string;
  host?: string;
  port?: string;
  database?: string;
}

function fromConfig(config: pg.ClientConfig): TargetParts {
  return {
    user: config.user,
    host: config.host,
    port: config.port === undefined ? undefined : String(config.port),
    database: config.database,
  };
}

function fromConnectionString(connectionString: string): TargetParts {
  let url: URL;
  try {
    url = new URL(connectionString);
  } catch {
    // Not a URL (pg also accepts a bare socket path); it is still a stable key, and carries no
    // `user:password@` part to hide.
    return { host: connectionString };
  }
  const decode = (value: string) => (value ? decodeURIComponent(value) : undefined);
  return {
    user: decode(url.username),
    host: url.searchParams.get('host') ?? decode(url.hostname),
    port: url.searchParams.get('port') ?? (url.port || undefined),
    database: decode(url.pathname.slice(1)),
  };
}
