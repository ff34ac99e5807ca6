export { PostgresListener } from './postgres-listener.js';
export { acquireListener, type ListenerLease } from './listener-registry.js';
export {
  ListenerState,
  type ListenerReadyEvent,
  type ListenerStatus,
  type ListenerStatusError,
} from './listener.events.js';
export {
  LISTENER_DEFAULTS,
  resolveListenerOptions,
  type ListenerReconnectOptions,
  type PostgresListenerOptions,
  type ResolvedListenerOptions,
} from './listener-options.js';
export {
  InvalidChannelNameError,
  InvalidListenerOptionError,
  ListenerClosedError,
} from './listener.errors.js';
export { assertChannelName, MAX_CHANNEL_NAME_BYTES } from './channel-name.js';
export { FATAL_CONNECTION_SQLSTATES } from './connection-errors.js';
