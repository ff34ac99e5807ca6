import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, type INestMicroservice } from '@nestjs/common';
import {
  EventPattern,
  MessagePattern,
  Payload,
  type ConsumerDeserializer,
  type ConsumerSerializer,
  type ProducerDeserializer,
  type ProducerSerializer,
} from '@nestjs/microservices';
import pg from 'pg';
import { delay, filter, firstValueFrom, lastValueFrom, of, take, tap, toArray } from 'rxjs';
import {
  ClientPostgres,
  POSTGRES_TRANSPORT,
  PostgresStatus,
  type ServerPostgres,
} from '../../lib/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { query, startClient, startServer } from '../helpers/transport.js';

const events: unknown[] = [];

@Controller()
class ContractController {
  /** An event handler returning an Observable is awaited to completion. */
  @EventPattern('observable.event', POSTGRES_TRANSPORT)
  observableEvent(@Payload() data: { n: number }) {
    return of(data).pipe(
      delay(200),
      tap((value) => events.push(value)),
    );
  }

  @MessagePattern('envelope.echo', POSTGRES_TRANSPORT)
  echo(@Payload() data: unknown) {
    return { echoed: data };
  }
}

/** Wraps every packet in a versioned envelope, as a team migrating formats might. */
class EnvelopeSerializer implements ProducerSerializer, ConsumerSerializer {
  serialize(value: unknown) {
    return { v: 2, body: value };
  }
}

class EnvelopeDeserializer implements ProducerDeserializer, ConsumerDeserializer {
  deserialize(value: { v: number; body: any }) {
    if (value?.v !== 2) throw new Error('not a v2 envelope');
    return value.body;
  }
}

describe('the Nest transport contract', () => {
  let db: TestDatabase;
  let app: INestMicroservice;
  let server: ServerPostgres;
  let client: ClientPostgres;

  beforeAll(async () => {
    db = await createTestDatabase();
    ({ app, server } = await startServer(db.url, [ContractController], {
      group: 'contract',
      serializer: new EnvelopeSerializer(),
      deserializer: new EnvelopeDeserializer(),
    }));
    client = await startClient(db.url, {
      serializer: new EnvelopeSerializer(),
      deserializer: new EnvelopeDeserializer(),
    });
  });

  afterAll(async () => {
    await client.close();
    await app.close();
    await db.drop();
  });

  it('round-trips through custom serializers and deserializers on both sides', async () => {
    expect(await firstValueFrom(client.send('envelope.echo', { a: 1 }))).toEqual({
      echoed: { a: 1 },
    });
    const [row] = await query(
      db.url,
      "SELECT payload FROM nestjs_transport.messages WHERE kind = 'request' LIMIT 1",
    );
    expect(row.payload).toMatchObject({ v: 2, body: { pattern: 'envelope.echo', data: { a: 1 } } });
  });

  it('awaits an Observable event handler', async () => {
    const outcome = firstValueFrom(
      server.outcomes$.pipe(filter((o) => o.pattern === 'observable.event')),
    );
    await lastValueFrom(client.emit('observable.event', { n: 7 }));
    // Consumed only once the Observable completed, 200 ms after the handler returned it.
    expect((await outcome).durationMs).toBeGreaterThanOrEqual(190);
    expect(events).toEqual([{ n: 7 }]);
  });

  it('reports status, and unwraps to the pool and the shared listener', async () => {
    expect(
      await firstValueFrom(
        server.status.pipe(
          filter((s) => s === PostgresStatus.CONNECTED),
          take(1),
        ),
      ),
    ).toBe(PostgresStatus.CONNECTED);
    const { pool, listener } = server.unwrap<{
      pool: pg.Pool;
      listener: { backendPid?: number };
    }>();
    expect(pool).toBeInstanceOf(pg.Pool);
    expect(listener.backendPid).toEqual(expect.any(Number));
    expect(client.unwrap()).toBeInstanceOf(pg.Pool);
    const statuses: string[] = [];
    server.on('status', (status) => statuses.push(status));
    const seen = lastValueFrom(server.status.pipe(take(3), toArray()));
    await query(db.url, 'SELECT pg_terminate_backend($1)', [listener.backendPid]);
    expect(await seen).toEqual([
      PostgresStatus.CONNECTED,
      PostgresStatus.RECONNECTING,
      PostgresStatus.CONNECTED,
    ]);
    expect(statuses).toEqual([PostgresStatus.RECONNECTING, PostgresStatus.CONNECTED]);
  });
});
