import { Controller, Inject } from '@nestjs/common';
import { ClientProxy, Ctx, EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import { POSTGRES_TRANSPORT, PostgresContext } from '../../lib/index.js';

const PRICES: Record<string, number> = { book: 12.5, lamp: 40, chair: 85 };

/** Quotes prices on request, and charges every created order exactly once. */
@Controller()
export class PaymentsController {
  constructor(@Inject('EVENTS') private readonly events: ClientProxy) {}

  /** Request/reply: the orders API asks for a price before it creates an order. */
  @MessagePattern('payments.quote', POSTGRES_TRANSPORT)
  quote(@Payload() request: { item: string; qty: number }) {
    const price = PRICES[request.item];
    if (price === undefined) return { error: `unknown item "${request.item}"` };
    return { amount: price * request.qty };
  }

  /**
   * The payment row and the payment.captured message commit with the consume of order.created:
   * consume → transform → produce, exactly once.
   */
  @EventPattern<string>('order.created', POSTGRES_TRANSPORT)
  async charge(@Payload() order: { id: string; amount: number }, @Ctx() ctx: PostgresContext) {
    await ctx.query('INSERT INTO shop.payments (order_id, amount) VALUES ($1, $2)', [
      order.id,
      order.amount,
    ]);
    await lastValueFrom(this.events.emit('payment.captured', { orderId: order.id }));
  }
}
