/** Per-message options of `emit` and `send`. */
export interface PostgresRecordOptions {
  /**
   * Makes the send exactly-once: a second message with the same key to the same recipient is not
   * inserted (and does not fail). Default: a random UUID, i.e. every call is a new message.
   */
  idempotencyKey?: string;
}

/**
 * Wraps a payload with per-message options, as Nest's RmqRecord and KafkaRecord do:
 * `client.emit('order.paid', new PostgresRecord(order, { idempotencyKey: order.id }))`.
 */
export class PostgresRecord<TData = unknown> {
  constructor(
    readonly data: TData,
    readonly options: PostgresRecordOptions = {},
  ) {}
}

/** Builds a PostgresRecord step by step. */
export class PostgresRecordBuilder<TData = unknown> {
  private options: PostgresRecordOptions = {};

  constructor(private data?: TData) {}

  setData(data: TData): this {
    this.data = data;
    return this;
  }

  setIdempotencyKey(idempotencyKey: string): this {
    this.options = { ...this.options, idempotencyKey };
    return this;
  }

  build(): PostgresRecord<TData> {
    return new PostgresRecord(this.data as TData, this.options);
  }
}
