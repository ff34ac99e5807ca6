import type pg from 'pg';
import { SqlState, sqlStateOf } from '../errors/sqlstate.js';
import { statementName } from './statement.js';

/** Bounds that keep dynamic SQL from growing every session's memory. */
export interface UserStatementLimits {
  /** Texts that get a name; later texts run unnamed. Each connection prepares at most this many. */
  readonly names: number;
  /** Longer texts always run unnamed. */
  readonly textChars: number;
  /** Texts seen once that are remembered, waiting for a second use; forgotten all at once when full. */
  readonly seenOnce: number;
}

export const USER_STATEMENT_LIMITS: UserStatementLimits = {
  names: 256,
  textChars: 10_000,
  seenOnce: 4_096,
};

/**
 * Errors after which a text runs unnamed for good: 0A000 is "cached plan must not change result
 * type" (a table changed under a prepared `SELECT *`); 26000 is a statement the session no longer
 * has (`DEALLOCATE ALL` or `DISCARD ALL` ran on the connection).
 */
const REFUSING_STATES: ReadonlySet<string> = new Set([
  SqlState.FeatureNotSupported,
  SqlState.InvalidSqlStatementName,
]);

/** A pool, a client, or the library's transaction: each runs a query config. */
export interface Queryable {
  query<R extends pg.QueryResultRow>(config: pg.QueryConfig): Promise<pg.QueryResult<R>>;
}

/**
 * The handlers' and services' own SQL, sent through `PostgresContext.query` and
 * `PostgresTransactionHost.query`. From its second use on, a text with parameters runs as a named
 * prepared statement, so each connection parses and plans it once instead of on every call, as
 * the library's own statements do. Most handlers run the same few statements for every message,
 * and parsing and planning them was a large share of the server's CPU per message.
 *
 * A text without parameters keeps node-postgres's simple protocol (it may hold several
 * statements), a text used once is never prepared, and the limits bound what one session holds.
 * A text whose named statement PostgreSQL refuses (see REFUSING_STATES) runs unnamed from then on:
 * that one call fails, and a message whose handler it was is retried as after any error.
 */
export class UserStatements {
  /** Name per text; `null` once the text runs unnamed for good. */
  private readonly names = new Map<string, string | null>();
  private readonly seenOnce = new Set<string>();

  constructor(private readonly limits: UserStatementLimits = USER_STATEMENT_LIMITS) {}

  /** Runs `text` on `target`, named once the text repeats. */
  query<R extends pg.QueryResultRow>(
    target: Queryable,
    text: string,
    values: unknown[] | undefined,
  ): Promise<pg.QueryResult<R>> {
    const name = values === undefined ? undefined : this.nameOf(text);
    if (name === undefined) return target.query<R>({ text, values });
    return target.query<R>({ name, text, values }).catch((error: unknown) => {
      const state = sqlStateOf(error);
      if (state !== undefined && REFUSING_STATES.has(state)) this.names.set(text, null);
      throw error;
    });
  }

  /** The name `text` runs under, or undefined to run it unnamed. */
  private nameOf(text: string): string | undefined {
    const known = this.names.get(text);
    if (known !== undefined) return known ?? undefined;
    if (this.names.size >= this.limits.names || text.length > this.limits.textChars) return;
    if (!this.seenOnce.has(text)) {
      if (this.seenOnce.size >= this.limits.seenOnce) this.seenOnce.clear();
      this.seenOnce.add(text);
      return;
    }
    this.seenOnce.delete(text);
    const name = statementName('nestjs_transport_user', text);
    this.names.set(text, name);
    return name;
  }
}

/** One per process: a name stands for one text on every connection. */
const shared = new UserStatements();

/** Runs a user's query, prepared as `UserStatements` describes unless `prepared` is false. */
export function runUserQuery<R extends pg.QueryResultRow>(
  target: Queryable,
  text: string,
  values: unknown[] | undefined,
  prepared: boolean,
): Promise<pg.QueryResult<R>> {
  return prepared ? shared.query<R>(target, text, values) : target.query<R>({ text, values });
}
