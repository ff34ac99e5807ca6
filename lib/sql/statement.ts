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
  const name = prepared ? statementName('nestjs_transport', text) : undefined;
  return (values) => ({ name, text, values });
}

/** The prepared statement name of `text`: the same on every connection and in every process. */
export function statementName(prefix: string, text: string): string {
  return `${prefix}_${createHash('sha256').update(text).digest('hex').slice(0, 20)}`;
}
