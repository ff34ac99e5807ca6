import type { INestMicroservice, Provider, Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import pg from 'pg';
import { lastValueFrom } from 'rxjs';
import {
  ClientPostgres,
  PostgresTransactionHost,
  ServerPostgres,
  type ClientPostgresOptions,
  type ServerPostgresOptions,
} from '../../lib/index.js';

/** Starts a Nest microservice consuming with ServerPostgres. */
export async function startServer(
  url: string,
  controllers: Type[],
  options: Omit<ServerPostgresOptions, 'connectionString'>,
  providers: Provider[] = [],
  configure?: (app: INestMicroservice) => void,
): Promise<{ app: INestMicroservice; server: ServerPostgres }> {
  const moduleRef = await Test.createTestingModule({ controllers, providers }).compile();
  const server = new ServerPostgres({ connectionString: url, ...options });
  const app = moduleRef.createNestMicroservice({
    strategy: server,
    logger: process.env.TEST_LOGS ? ['error', 'warn', 'log'] : false,
  });
  configure?.(app);
  await app.listen();
  return { app, server };
}

/** A connected ClientPostgres. */
export async function startClient(
  url: string,
  options: Omit<ClientPostgresOptions, 'connectionString'> = {},
): Promise<ClientPostgres> {
  const client = new ClientPostgres({ connectionString: url, ...options });
  await client.connect();
  return client;
}

/** Runs one query on a short-lived connection. */
export async function query<R extends pg.QueryResultRow = any>(
  url: string,
  text: string,
  values?: unknown[],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/**
 * Emits one `pattern` event per payload in ONE transaction, so that a running consumer claims
 * them together, in this order. `beforeCommit` runs last in that transaction.
 */
export async function emitTogether(
  url: string,
  client: ClientPostgres,
  pattern: string,
  payloads: unknown[],
  beforeCommit?: (connection: pg.PoolClient) => Promise<unknown>,
): Promise<void> {
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  const connection = await pool.connect();
  try {
    await connection.query('BEGIN');
    await new PostgresTransactionHost(pool).runWith(connection, async () => {
      for (const payload of payloads) await lastValueFrom(client.emit(pattern, payload));
    });
    await beforeCommit?.(connection);
    await connection.query('COMMIT');
  } finally {
    connection.release();
    await pool.end();
  }
}

/**
 * Subscribes `group` to `pattern` events without starting a consumer, so that emits store rows
 * for it.
 */
export async function subscribe(url: string, pattern: string, group: string): Promise<void> {
  await query(
    url,
    `INSERT INTO nestjs_transport.subscriptions (pattern, group_name, kind)
     VALUES ($1, $2, 'event') ON CONFLICT DO NOTHING`,
    [pattern, group],
  );
}
