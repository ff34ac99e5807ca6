import pg from 'pg';
import type { Contender } from './contender.js';
import { benchPool, query } from './database.js';
import type { BenchPayload } from './workload.js';

const CHANNEL = 'bench_floor';

/**
 * Not a queue: the floor under any of them. A producer INSERTs a row, a trigger NOTIFYs its
 * payload, one LISTEN connection receives it. No claim, no handler transaction, no business row.
 */
export const notifyFloorContender: Contender = {
  name: 'notify-floor',
  label: 'floor: INSERT + NOTIFY trigger + LISTEN',
  settings:
    'one pg.Pool (10) inserting, an AFTER INSERT trigger calling pg_notify, one LISTEN client',
  guarantee: 'none (delivery only)',

  async prepare(url) {
    await query(
      url,
      `CREATE TABLE floor_events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload json NOT NULL);
       CREATE FUNCTION floor_notify() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN PERFORM pg_notify('${CHANNEL}', NEW.payload::text); RETURN NULL; END $$;
       CREATE TRIGGER floor_notify AFTER INSERT ON floor_events
         FOR EACH ROW EXECUTE FUNCTION floor_notify();`,
    );
  },

  async startConsumer(url, hooks) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    client.on('notification', ({ payload }) => {
      const data = JSON.parse(payload ?? '{}') as BenchPayload;
      hooks.started?.(data);
      hooks.handled?.(data);
    });
    await client.query(`LISTEN ${CHANNEL}`);
    return { stop: () => client.end() };
  },

  async startProducer(url) {
    const pool = benchPool(url, 10);
    return {
      emit: async (payload) => {
        await pool.query('INSERT INTO floor_events (payload) VALUES ($1)', [
          JSON.stringify(payload),
        ]);
      },
      close: () => pool.end(),
    };
  },

  async insertBacklog() {
    throw new Error('The NOTIFY floor has no backlog to drain');
  },
};
