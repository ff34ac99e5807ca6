import { Subject } from 'rxjs';

interface ChannelEntry {
  readonly subject: Subject<string>;
  subscribers: number;
}

/**
 * The in-process side of fan-out: one Subject per channel, counted by subscriber, so the one
 * connection LISTENs while anybody in the process cares about a channel and no longer.
 */
export class ChannelHub {
  private readonly entries = new Map<string, ChannelEntry>();

  /** Adds a subscriber; `first` tells the caller to LISTEN. */
  attach(channel: string): { subject: Subject<string>; first: boolean } {
    let entry = this.entries.get(channel);
    const first = entry === undefined;
    if (!entry) {
      entry = { subject: new Subject<string>(), subscribers: 0 };
      this.entries.set(channel, entry);
    }
    entry.subscribers += 1;
    return { subject: entry.subject, first };
  }

  /** Removes a subscriber; true when it was the last, telling the caller to UNLISTEN. */
  detach(channel: string): boolean {
    const entry = this.entries.get(channel);
    if (!entry) return false;
    entry.subscribers -= 1;
    if (entry.subscribers > 0) return false;
    this.entries.delete(channel);
    return true;
  }

  dispatch(channel: string, payload: string): void {
    // A notification for a channel just UNLISTENed may still be in flight: nobody wants it.
    this.entries.get(channel)?.subject.next(payload);
  }

  channels(): string[] {
    return [...this.entries.keys()];
  }

  /** Completes every stream (subscribers' teardowns then detach themselves). */
  completeAll(): void {
    for (const { subject } of [...this.entries.values()]) subject.complete();
    this.entries.clear();
  }
}
