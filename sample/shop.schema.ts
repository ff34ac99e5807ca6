import pg from 'pg';

/** The sample's own business tables, next to the transport's schema. */
export async function createShopSchema(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`
      CREATE SCHEMA IF NOT EXISTS shop;
      CREATE TABLE IF NOT EXISTS shop.orders (
        id uuid PRIMARY KEY, item text NOT NULL, qty int NOT NULL, amount numeric NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now());
      CREATE TABLE IF NOT EXISTS shop.payments (
        order_id uuid PRIMARY KEY, amount numeric NOT NULL, captured_at timestamptz NOT NULL DEFAULT now());
      -- No unique constraint on order_id on purpose: the demo checks that exactly-once consume,
      -- not a constraint, is what keeps one shipment per order.
      CREATE TABLE IF NOT EXISTS shop.shipments (
        id bigserial PRIMARY KEY, order_id uuid NOT NULL, worker_pid int NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now());`);
  } finally {
    await client.end();
  }
}
