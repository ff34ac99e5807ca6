/** Status of a ServerPostgres or ClientPostgres, derived from the shared LISTEN connection. */
export enum PostgresStatus {
  CONNECTED = 'connected',
  DISCONNECTED = 'disconnected',
  RECONNECTING = 'reconnecting',
  CLOSED = 'closed',
}

/** A message moved to dead-letter. */
export interface DeadLetterEvent {
  readonly id: string;
  readonly pattern: string;
  readonly group: string;
  readonly attempts: number;
  readonly error: string;
}

/** Events of `ServerPostgres.on()`. */
export type PostgresServerEvents = {
  error: (error: Error) => void;
  status: (status: PostgresStatus) => void;
  deadLetter: (event: DeadLetterEvent) => void;
};

/** Events of `ClientPostgres.on()`. */
export type PostgresClientEvents = {
  error: (error: Error) => void;
  status: (status: PostgresStatus) => void;
};
