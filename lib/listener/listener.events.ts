/** Where the listener's one connection is in its life cycle. */
export enum ListenerState {
  /** First connection attempt, before the listener has ever been connected. */
  Connecting = 'connecting',
  /** Connected, every channel LISTENed again, heartbeat running. */
  Connected = 'connected',
  /** Not connected: waiting for, or making, the next attempt. */
  Reconnecting = 'reconnecting',
  /** `close()` was called; terminal. */
  Closed = 'closed',
}

/** Why the listener left `Connected` or failed to connect. Never holds a password or URL. */
export interface ListenerStatusError {
  message: string;
  /** SQLSTATE for server errors, Node's errno code (`ECONNREFUSED`, `ETIMEDOUT`…) otherwise. */
  code?: string;
  /** True when retrying cannot help until an operator acts (wrong password, missing database). */
  fatal: boolean;
}

/** A snapshot of the listener, as emitted by `state$`. */
export interface ListenerStatus {
  state: ListenerState;
  /** When the current state began (a run of reconnect attempts keeps its first `since`). */
  since: Date;
  /** Reconnect attempt number, from 1 (`Reconnecting` only). */
  attempt?: number;
  /** Delay before that attempt, in milliseconds (`Reconnecting` only). */
  nextDelayMs?: number;
  error?: ListenerStatusError;
  /** Result of the notification self-test (`Connected` only; absent when the test is off). */
  notificationsVerified?: boolean;
}

/** Emitted on `ready$` once every channel is LISTENed on a new connection. */
export interface ListenerReadyEvent {
  /** False for the listener's very first connection, true after any reconnect. */
  reconnect: boolean;
}
