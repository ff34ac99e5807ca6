import {
  BadRequestException,
  Body,
  Controller,
  Get,
  Inject,
  NotFoundException,
  Param,
  ParseUUIDPipe,
  Post,
} from '@nestjs/common';
import { ClientProxy } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { OrdersService, type NewOrder } from './orders.service.js';

@Controller('orders')
export class OrdersController {
  constructor(
    private readonly orders: OrdersService,
    @Inject('EVENTS') private readonly rpc: ClientProxy,
  ) {}

  /** Asks payments for a price (request/reply over Postgres), then places the order atomically. */
  @Post()
  async create(@Body() body: NewOrder) {
    if (typeof body?.item !== 'string' || !Number.isInteger(body?.qty) || body.qty < 1) {
      throw new BadRequestException('expected { item: string, qty: positive integer }');
    }
    const quote = await firstValueFrom(
      this.rpc.send<{ amount?: number; error?: string }>('payments.quote', body),
    );
    if (quote.error || quote.amount === undefined) throw new BadRequestException(quote.error);
    return this.orders.place(body, quote.amount);
  }

  @Get(':id')
  async find(@Param('id', ParseUUIDPipe) id: string) {
    const order = await this.orders.find(id);
    if (!order) throw new NotFoundException();
    return order;
  }
}
