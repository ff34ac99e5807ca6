import { BaseRpcContext } from '@nestjs/microservices';
import type pg from 'pg';
import { runUserQuery, type Queryable } from '../sql/user-statements.js';

/** What a handler knows about the message it is handling. */
export interface PostgresMessageInfo {
  /** The row id of this copy of the message. */
  readonly id: string;
  readonly pattern: string;
  readonly kind: 'event' | 'request';
  /** 1 for the first delivery; counts crashes as well as thrown errors. */
  readonly attempt: number;
  /** The consumer group this copy was delivered to. */
  readonly group: string;
  readonly idempotencyKey: string;
  readonly createdAt: Date;
  /** The connection of the consume transaction. Writes through it commit with the consume. */
  readonly client: pg.ClientBase;
}

type PostgresContextArgs = [PostgresMessageInfo];

/** The context of a `ServerPostgres` handler: `@Ctx() ctx: PostgresContext`. */
export class PostgresContext extends BaseRpcContext<PostgresContextArgs> {
  /**
   * @param preparedStatements whether `query` prepares a text from its second use on (the
   *   connection option of the same name).
   */
  constructor(
    args: PostgresContextArgs,
    private readonly preparedStatements = true,
    /** Where `query` runs, when not on `client` itself: the consume transaction. */
    private readonly transaction?: Queryable,
  ) {
    super(args);
  }

  /** Everything known about the message. */
  getMessage(): PostgresMessageInfo {
    return this.args[0];
  }

  /** The row id of this copy of the message. */
  getMessageId(): string {
    return this.args[0].id;
  }

  /** The pattern the message was sent to. */
  getPattern(): string {
    return this.args[0].pattern;
  }

  /** The delivery attempt, starting at 1. */
  getAttempt(): number {
    return this.args[0].attempt;
  }

  /** The consumer group handling the message. */
  getGroup(): string {
    return this.args[0].group;
  }

  /** The key that made the send exactly-once. */
  getIdempotencyKey(): string {
    return this.args[0].idempotencyKey;
  }

  /**
   * The connection of the transaction that marks this message consumed. Queries on it commit or
   * roll back together with the consume.
   */
  getClient(): pg.ClientBase {
    return this.args[0].client;
  }

  /**
   * Runs a query in the consume transaction. A text with parameters runs as a prepared statement
   * from its second use on, unless the `preparedStatements` option is false.
   */
  query<R extends pg.QueryResultRow = any>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    return runUserQuery<R>(
      this.transaction ?? this.args[0].client,
      text,
      values,
      this.preparedStatements,
    );
  }
}
