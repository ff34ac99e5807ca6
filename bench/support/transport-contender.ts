import { Controller, Inject, Module, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import {
  ClientPostgres,
  migrate,
  POSTGRES_TRANSPORT,
  PostgresContext,
  ServerPostgres,
  type ServerPostgresOptions,
} from '../../lib/index.js';
import { benchLogger } from './bench-logger.js';
import { BENCH_PATTERN, type Contender, type ConsumerHooks } from './contender.js';
import { query } from './database.js';
import { INSERT_BUSINESS_ROW, type BenchPayload } from './workload.js';

export const BENCH_GROUP = 'bench';

/**
 * Subscribes the bench group to the bench pattern with no consumer running, so that an emit
 * stores a row: a scenario that only publishes needs it.
 */
export async function subscribeBenchGroup(url: string): Promise<void> {
  await query(
    url,
    `INSERT INTO nestjs_transport.subscriptions (pattern, kind, group_name)
     VALUES ($1, 'event', $2) ON CONFLICT DO NOTHING`,
    [BENCH_PATTERN, BENCH_GROUP],
  );
}
const HOOKS = Symbol('BENCH_HOOKS');
const HANDLER_QUERY = Symbol('BENCH_HANDLER_QUERY');

/**
 * How the handler sends its INSERT: `ctx.query` (prepared from its second use on, as the README
 * shows handlers writing), or the consume transaction's pg client, which sends it unprepared as
 * the peers' handlers do.
 */
export type HandlerQuery = 'ctx' | 'client';

@Controller()
class BenchController {
  constructor(
    @Inject(HOOKS) private readonly hooks: ConsumerHooks,
    @Inject(HANDLER_QUERY) private readonly handlerQuery: HandlerQuery,
  ) {}

  /** Writes one business row in the consume transaction. */
  @EventPattern<string>(BENCH_PATTERN, POSTGRES_TRANSPORT)
  async entry(@Payload() payload: BenchPayload, @Ctx() ctx: PostgresContext): Promise<void> {
    this.hooks.started?.(payload);
    if (this.handlerQuery === 'ctx') await ctx.query(INSERT_BUSINESS_ROW, [payload.n]);
    else await ctx.getClient().query(INSERT_BUSINESS_ROW, [payload.n]);
    this.hooks.handled?.(payload);
  }
}

function benchModule(hooks: ConsumerHooks, handlerQuery: HandlerQuery): Type {
  @Module({
    controllers: [BenchController],
    providers: [
      { provide: HOOKS, useValue: hooks },
      { provide: HANDLER_QUERY, useValue: handlerQuery },
    ],
  })
  class BenchConsumerModule {}
  return BenchConsumerModule;
}

/** Starts a Nest microservice on ServerPostgres with the bench handler. */
export async function startTransportConsumer(
  url: string,
  hooks: ConsumerHooks,
  options: Partial<ServerPostgresOptions> = {},
  handlerQuery: HandlerQuery = 'ctx',
): Promise<{ server: ServerPostgres; stop(): Promise<void> }> {
  const server = new ServerPostgres({ connectionString: url, group: BENCH_GROUP, ...options });
  const app = await NestFactory.createMicroservice(benchModule(hooks, handlerQuery), {
    strategy: server,
    logger: benchLogger,
  });
  await app.listen();
  return { server, stop: () => app.close() };
}

export interface TransportSettings {
  readonly concurrency?: number;
  readonly batchSize?: number;
  /** Default `ctx`. */
  readonly handlerQuery?: HandlerQuery;
}

/**
 * ServerPostgres's defaults (lib/options/resolve-server-options.ts). The bench passes them
 * explicitly, so its description of what ran stays true if the defaults move.
 */
export const TRANSPORT_DEFAULTS = { concurrency: 4, batchSize: 50 } as const;

/** nestjs-pg-transport; without settings, with the library defaults. */
export function transportContender(settings: TransportSettings = {}): Contender {
  const concurrency = settings.concurrency ?? TRANSPORT_DEFAULTS.concurrency;
  const batchSize = settings.batchSize ?? TRANSPORT_DEFAULTS.batchSize;
  const handlerQuery = settings.handlerQuery ?? 'ctx';
  const tuned =
    concurrency !== TRANSPORT_DEFAULTS.concurrency || batchSize !== TRANSPORT_DEFAULTS.batchSize;
  const unprepared = handlerQuery === 'client';
  const qualifiers = [
    ...(tuned ? [`concurrency ${concurrency}, batchSize ${batchSize}`] : []),
    ...(unprepared ? ['handler INSERT unprepared'] : []),
  ];
  const sizing = tuned
    ? `\`concurrency\` ${concurrency}, \`batchSize\` ${batchSize}, otherwise defaults`
    : `\`concurrency\` ${concurrency}, \`batchSize\` ${batchSize} (the library defaults), ` +
      'LISTEN/NOTIFY wake-ups sent after commit';
  const handler = unprepared
    ? "the handler sends its INSERT through the consume transaction's pg client " +
      "(`ctx.getClient().query`), unprepared, as the peers' handlers send theirs"
    : 'the handler writes through `ctx.query`, which prepares the INSERT from its second use on';
  return {
    name:
      'nestjs-pg-transport' +
      (tuned ? `-c${concurrency}-b${batchSize}` : '') +
      (unprepared ? '-unprepared' : ''),
    label:
      qualifiers.length > 0
        ? `nestjs-pg-transport (${qualifiers.join('; ')})`
        : 'nestjs-pg-transport',
    settings: `${sizing}; ${handler}`,
    guarantee: 'business row written in the consume transaction (exactly once)',

    async prepare(url) {
      await migrate(url);
    },

    startConsumer: (url, hooks) =>
      startTransportConsumer(url, hooks, { concurrency, batchSize }, handlerQuery),

    async startProducer(url) {
      const client = new ClientPostgres({ connectionString: url });
      await client.connect();
      return {
        emit: async (payload) => {
          await lastValueFrom(client.emit(BENCH_PATTERN, payload));
        },
        close: () => client.close(),
      };
    },

    insertBacklog: (url, count) => insertTransportBacklog(url, count),
  };
}

/**
 * Inserts `count` pending messages for the bench group straight into the messages table, in
 * chunks of `chunk` rows: what a bulk import or a replay would do.
 */
export async function insertTransportBacklog(
  url: string,
  count: number,
  chunk = 100_000,
): Promise<void> {
  for (let first = 1; first <= count; first += chunk) {
    const last = Math.min(count, first + chunk - 1);
    await query(
      url,
      `INSERT INTO nestjs_transport.messages (recipient, pattern, kind, idempotency_key, payload)
       SELECT $1, $2, 'event', 'k' || g,
              json_build_object('pattern', $2::text, 'data', json_build_object('n', g, 'sentAt', 0))
       FROM generate_series($3::int, $4::int) AS g`,
      [BENCH_GROUP, BENCH_PATTERN, first, last],
    );
  }
}
