import type { INestMicroservice, Provider, Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import pg from 'pg';
import {
  ClientPostgres,
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
