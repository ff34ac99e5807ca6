import type pg from 'pg';

/** host:port/database of a connected client, the same form as `ResolvedConnection.target`. */
export function targetOfClient(client: pg.ClientBase): string {
  const params = (client as unknown as { connectionParameters?: pg.ClientConfig })
    .connectionParameters;
  if (!params) return 'unknown';
  return `${params.host ?? 'localhost'}:${params.port ?? 5432}/${params.database ?? ''}`;
}
