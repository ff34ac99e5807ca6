import pg from 'pg';
import { ServiceProcess } from './service-process.js';
import { shopReport, type ShopReport } from './shop-report.js';

const ITEMS = ['book', 'lamp', 'chair'];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface DemoOptions {
  url: string;
  orders: number;
  /** Keep the services running after the check, for trying the API by hand. */
  serve: boolean;
}

/**
 * Runs the shop: payments, two shipping workers and the orders API, each in its own process.
 * Places orders over HTTP while killing a shipping worker mid-handler and cutting every LISTEN
 * connection, then checks that every paid order has exactly one shipment.
 */
export async function runDemo({ url, orders, serve }: DemoOptions): Promise<ShopReport> {
  const env = { DATABASE_URL: url, PORT: process.env.PORT ?? '0' };
  const db = new pg.Pool({ connectionString: url, max: 2 });
  step('Starting payments, two shipping workers and the orders API, each in its own process');
  const payments = await ServiceProcess.start('payments', 'payments', env);
  const shipping = [
    await ServiceProcess.start('shipping', 'shipping-1', env),
    await ServiceProcess.start('shipping', 'shipping-2', env),
  ];
  const api = await ServiceProcess.start('orders', 'orders', env);
  const base = api.ready.url!.replace('[::1]', '127.0.0.1');
  try {
    step(`Placing ${orders} orders through POST ${base}/orders (10 at a time)`);
    let placed = 0;
    const faults = (async () => {
      await until(() => placed >= orders * 0.3);
      step(`Killing shipping-1 (pid ${shipping[0].pid}) with SIGKILL, mid-handler`);
      await shipping[0].kill();
      await sleep(500);
      shipping[0] = await ServiceProcess.start('shipping', 'shipping-3', env);
      step(`Started shipping-3 (pid ${shipping[0].pid}) in its place`);
      await until(() => placed >= orders * 0.6);
      const { rowCount } = await db.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = 'nestjs-pg-transport:listener' AND datname = current_database()`,
      );
      step(
        `Cut ${rowCount} LISTEN connections (pg_terminate_backend); each process reconnects and catches up`,
      );
    })();
    await Promise.all(
      Array.from({ length: 10 }, async (_, lane) => {
        for (let i = lane; i < orders; i += 10) {
          const response = await fetch(`${base}/orders`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ item: ITEMS[i % ITEMS.length], qty: 1 + (i % 3) }),
          });
          if (response.status !== 201) throw new Error(`POST /orders answered ${response.status}`);
          placed++;
        }
      }),
    );
    await faults;
    step('Waiting for payments and shipping to finish');
    await printHealth(base);
    let report = await shopReport(db);
    for (
      let waited = 0;
      waited < 60_000 && (report.paid < orders || report.unshipped > 0);
      waited += 250
    ) {
      await sleep(250);
      report = await shopReport(db);
    }
    await printHealth(base);
    if (serve) {
      step(
        `Serving: try curl -XPOST ${base}/orders -H 'content-type: application/json' -d '{"item":"lamp","qty":2}'. Ctrl-C stops.`,
      );
      await new Promise((resolve) => process.once('SIGINT', resolve));
    }
    return report;
  } finally {
    await Promise.all([api, payments, ...shipping].map((service) => service.stop()));
    await db.end();
  }
}

/** One line from GET /health: overall status, listener state, backlog per group. */
async function printHealth(base: string): Promise<void> {
  const response = await fetch(`${base}/health`);
  const body = (await response.json()) as { status?: string; details?: Record<string, any> };
  const postgres = body.details?.postgres ?? {};
  const groups = Object.entries(postgres.groups ?? {})
    .map(([group, backlog]: [string, any]) => `${group} ${backlog.pending} pending`)
    .join(', ');
  console.log(
    `  GET /health → ${response.status} ${body.status}: listener ${postgres.listener?.state}; ${groups}`,
  );
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await sleep(20);
}

function step(text: string): void {
  console.log(`\n▶ ${text}`);
}
