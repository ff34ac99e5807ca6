import { createHash } from 'node:crypto';
import type pg from 'pg';

/** A statement bound to its values at each call. */
export type Statement = (values: unknown[]) => pg.QueryConfig;

/**
 * Runs `text` as a named prepared statement: each connection parses and plans it once instead of
 * on every call, which is most of the server's CPU on the hot paths. Turn it off (`prepared`
 * false) behind a pooler that cannot keep prepared statements, such as PgBouncer in transaction
 * mode before 1.21.
 */
export function statement(text: string, prepared: boolean): Statement {
  const name = prepared
    ? `nestjs_transport_${createHash('sha256').update(text).digest('hex').slice(0, 20)}`
    : undefined;
  return (values) => ({ name, text, values });
}
