import { Controller } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { POSTGRES_TRANSPORT, PostgresContext } from '../../lib/index.js';

/** Creates one shipment per captured payment, in the transaction that consumes the event. */
@Controller()
export class ShippingController {
  @EventPattern<string>('payment.captured', POSTGRES_TRANSPORT)
  async ship(@Payload() payment: { orderId: string }, @Ctx() ctx: PostgresContext) {
    await ctx.query('INSERT INTO shop.shipments (order_id, worker_pid) VALUES ($1, $2)', [
      payment.orderId,
      process.pid,
    ]);
    // Packing takes a moment, so a worker killed by the demo is often mid-handler.
    await new Promise((resolve) => setTimeout(resolve, 15));
  }
}
