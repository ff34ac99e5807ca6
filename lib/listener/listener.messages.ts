import { ListenerState, type ListenerStatus } from './listener.events.js';

export type LogLevel = 'log' | 'warn' | 'error';

/** What the listener logs for a status change, or undefined for nothing. Never a secret. */
export function statusLogEntry(
  status: ListenerStatus,
  previous: ListenerStatus,
  context: { target: string; backendPid?: number; channels: number },
): { level: LogLevel; message: string } | undefined {
  const { target } = context;
  switch (status.state) {
    case ListenerState.Connecting:
      return { level: 'log', message: `Connecting to ${target}` };
    case ListenerState.Connected:
      return {
        level: 'log',
        message: `Connected to ${target} (backend pid ${context.backendPid}); listening on ${context.channels} channel(s)`,
      };
    case ListenerState.Reconnecting: {
      const { error, attempt, nextDelayMs = 0 } = status;
      const what =
        previous.state === ListenerState.Connected
          ? 'Lost the connection to'
          : 'Could not connect to';
      const code = error?.code ? ` [${error.code}]` : '';
      const message = `${what} ${target}${code}: ${error?.message}; attempt ${attempt} in ${Math.round(nextDelayMs)} ms`;
      return error?.fatal
        ? {
            level: 'error',
            message: `${message}. This will not heal by itself: check the credentials and that the database exists`,
          }
        : { level: 'warn', message };
    }
    case ListenerState.Closed:
      return { level: 'log', message: `Closed the connection to ${target}` };
  }
}

export function selfTestFailedMessage(target: string, timeoutMs: number): string {
  return (
    `Notification self-test failed on ${target}: a NOTIFY sent on the LISTEN session did not ` +
    `come back within ${timeoutMs} ms. Wake-ups will be missed (only polling will find new ` +
    'messages). A pooler in transaction or statement mode cannot deliver notifications: give the ' +
    'listener a direct connection string.'
  );
}

export function channelsMissingMessage(count: number): string {
  return `Heartbeat found ${count} channel(s) no longer LISTENed (is a pooler in the way?); LISTENing again`;
}

export function commandFailedMessage(command: string, reason: string): string {
  return `${command} failed: ${reason}`;
}
