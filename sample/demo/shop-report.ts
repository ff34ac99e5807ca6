import pg from 'pg';

export interface ShopReport {
  orders: number;
  paid: number;
  shipped: number;
  /** Orders with more than one shipment: must stay 0. */
  duplicated: number;
  /** Paid orders with no shipment yet. */
  unshipped: number;
  /** Shipping deliveries whose first attempt died with a killed worker or a cut connection. */
  redelivered: number;
  /** Shipments made by each worker process. */
  byWorker: Record<string, number>;
}

export async function shopReport(db: pg.Pool): Promise<ShopReport> {
  const { rows } = await db.query(`
    SELECT (SELECT count(*) FROM shop.orders)::int AS orders,
           (SELECT count(*) FROM shop.payments)::int AS paid,
           (SELECT count(DISTINCT order_id) FROM shop.shipments)::int AS shipped,
           (SELECT count(*) FROM (SELECT order_id FROM shop.shipments GROUP BY order_id
                                  HAVING count(*) > 1) d)::int AS duplicated,
           (SELECT count(*) FROM shop.payments p
             WHERE NOT EXISTS (SELECT 1 FROM shop.shipments s WHERE s.order_id = p.order_id))::int AS unshipped,
           (SELECT count(*) FROM nestjs_transport.messages
             WHERE recipient = 'shipping' AND attempts > 1)::int AS redelivered,
           (SELECT coalesce(json_object_agg(worker_pid, n), '{}') FROM
              (SELECT worker_pid, count(*)::int AS n FROM shop.shipments GROUP BY 1) w) AS by_worker`);
  const { by_worker: byWorker, ...counts } = rows[0];
  return { ...counts, byWorker };
}
