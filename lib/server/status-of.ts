import { PostgresStatus } from '../events/postgres.events.js';
import { ListenerState } from '../listener/index.js';

/** Maps the shared listener's state to the status Nest's `status` stream reports. */
export function statusOf(state: ListenerState): PostgresStatus {
  switch (state) {
    case ListenerState.Connected:
      return PostgresStatus.CONNECTED;
    case ListenerState.Reconnecting:
      return PostgresStatus.RECONNECTING;
    case ListenerState.Closed:
      return PostgresStatus.CLOSED;
    default:
      return PostgresStatus.DISCONNECTED;
  }
}
