// npm start: runs the shop demo on a throwaway PostgreSQL (or on DATABASE_URL when it is set)
// and exits 0 only if every paid order has exactly one shipment. `npm start -- --serve` keeps
// the services running afterwards. `--orders N` changes how many orders are placed.
import { startThrowawayPostgres } from '#throwaway-postgres';
import { migrate } from '../lib/index.js';
import { runDemo } from './demo/run-demo.js';
import { createShopSchema } from './shop.schema.js';

const args = process.argv.slice(2);
const orders = Number(args[args.indexOf('--orders') + 1]) || 150;
const serve = args.includes('--serve');

const throwaway = process.env.DATABASE_URL ? undefined : await startThrowawayPostgres();
const url = process.env.DATABASE_URL ?? throwaway!.url;
console.log(
  throwaway ? `Started a throwaway PostgreSQL on port ${throwaway.port}` : 'Using DATABASE_URL',
);
try {
  await migrate(url);
  await createShopSchema(url);
  const report = await runDemo({ url, orders, serve });
  console.log('\nResult');
  console.table({
    'orders placed': report.orders,
    'orders paid (payment.captured emitted once each)': report.paid,
    'paid orders shipped': report.shipped,
    'orders shipped more than once': report.duplicated,
    'paid orders not shipped': report.unshipped,
    'shipping messages redelivered after a failure': report.redelivered,
  });
  console.log('Shipments by worker pid:', report.byWorker);
  const ok =
    report.orders === orders &&
    report.paid === orders &&
    report.unshipped === 0 &&
    report.duplicated === 0;
  console.log(
    ok
      ? `\n✔ Every paid order has exactly one shipment (${report.shipped}/${report.paid}), despite a killed worker and cut connections.`
      : '\n✘ Some paid order does not have exactly one shipment.',
  );
  process.exitCode = ok ? 0 : 1;
} finally {
  await throwaway?.destroy();
}
