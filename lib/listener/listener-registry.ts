import { ListenerState } from './listener.events.js';
import { PostgresListener } from './postgres-listener.js';
import { resolveListenerOptions, type PostgresListenerOptions } from './listener-options.js';

/** A share of a process-wide listener; call `release()` (not `listener.close()`) when done. */
export interface ListenerLease {
  readonly listener: PostgresListener;
  /** Gives the share back; the last release closes the listener. Idempotent. */
  release(): Promise<void>;
}

interface RegistryEntry {
  listener: PostgresListener;
  leases: number;
}

// Module state on purpose: servers, client reply inboxes and user code may be created outside
// Nest's injector (or in several modules), yet must share one LISTEN session per server.
const registry = new Map<string, RegistryEntry>();

/**
 * Returns the process's listener for the options' connection target (`user@host:port/database`,
 * without the password), creating and starting it on the first lease. The first lease's other
 * options (heartbeat, backoff, logger) are the ones in effect for everybody sharing it.
 */
export function acquireListener(options: PostgresListenerOptions): ListenerLease {
  const { target } = resolveListenerOptions(options);
  let entry = registry.get(target);
  // A listener closed directly (instead of through its leases) is replaced, not handed out.
  if (!entry || entry.listener.status.state === ListenerState.Closed) {
    entry = { listener: new PostgresListener(options), leases: 0 };
    registry.set(target, entry);
    // start() never rejects for connection failures, which go to state$; nothing to handle here.
    entry.listener.start().catch(() => undefined);
  }
  entry.leases += 1;
  const leased = entry;
  let released = false;
  return {
    listener: leased.listener,
    release: async () => {
      if (released) return;
      released = true;
      leased.leases -= 1;
      if (leased.leases > 0) return;
      if (registry.get(target) === leased) registry.delete(target);
      await leased.listener.close();
    },
  };
}
