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

/** Connection strings `URL` cannot read, numbered in order of appearance (see below). */
const unreadable = new Map<string, number>();

function fromConnectionString(connectionString: string): TargetParts {
  const url = parseUrl(connectionString);
  if (!url) {
    // Still a stable key, but the string itself may hold a password, so it is never shown.
    let id = unreadable.get(connectionString);
    if (id === undefined) unreadable.set(connectionString, (id = unreadable.size + 1));
    return { host: `(connection string #${id})` };
  }
  const decode = (value: string) => (value ? decodeURIComponent(value) : undefined);
  return {
    user: decode(url.username),
    host: url.searchParams.get('host') ?? decode(url.hostname),
    port: url.searchParams.get('port') ?? (url.port || undefined),
    database: decode(url.pathname.slice(1)),
  };
}

function parseUrl(connectionString: string): URL | undefined {
  try {
    return new URL(connectionString);
  } catch {
    // `postgres://user@/db?host=/socket/dir` (empty host) is valid for pg but not for URL.
    const withHost = connectionString.replace(
      /^([a-z][\w+.-]*:\/\/(?:[^/@]*@)?)(?=[/?]|$)/i,
      '$1_',
    );
    try {
      const url = new URL(withHost);
      if (url.hostname === '_') url.hostname = '';
      return url;
    } catch {
      return undefined;
    }
  }
}
