import { Inject, Injectable } from '@nestjs/common';
import { ClientProxy } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import { lastValueFrom } from 'rxjs';
import { PostgresRecord, PostgresTransactionHost } from '../../lib/index.js';

export interface NewOrder {
  item: string;
  qty: number;
}

@Injectable()
export class OrdersService {
  constructor(
    private readonly db: PostgresTransactionHost,
    @Inject('EVENTS') private readonly events: ClientProxy,
  ) {}

  /**
   * The order row and its order.created message commit together, or neither exists. The order id
   * doubles as the idempotency key, so a retried request cannot announce the order twice.
   */
  place(order: NewOrder, amount: number): Promise<{ id: string; amount: number }> {
    const id = randomUUID();
    return this.db.run(async () => {
      await this.db.query(
        'INSERT INTO shop.orders (id, item, qty, amount) VALUES ($1, $2, $3, $4)',
        [id, order.item, order.qty, amount],
      );
      await lastValueFrom(
        this.events.emit(
          'order.created',
          new PostgresRecord({ id, amount }, { idempotencyKey: id }),
        ),
      );
      return { id, amount };
    });
  }

  async find(id: string) {
    const { rows } = await this.db.query(
      `SELECT o.id, o.item, o.qty, o.amount, p.captured_at,
              (SELECT count(*)::int FROM shop.shipments s WHERE s.order_id = o.id) AS shipments
       FROM shop.orders o LEFT JOIN shop.payments p ON p.order_id = o.id WHERE o.id = $1`,
      [id],
    );
    return rows[0];
  }
}
