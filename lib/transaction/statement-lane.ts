import type pg from 'pg';
import { whenAnswered } from './answered.js';

/**
 * The statements of one transaction, sent on its connection one at a time and in the order they
 * were made: each leaves as soon as the one before it has been answered (ReadyForQuery
 * included), and at once when nothing is waiting. node-postgres 8 would queue them itself, but
 * calling `query` on a client that is still executing one is deprecated and goes away in pg 9.
 * Waiting here costs no round trip: node-postgres never sends a queued query before the one
 * ahead of it has been answered either.
 */
export class StatementLane {
  /** Settles once the last statement given has been answered; undefined when none is waiting. */
  private last: Promise<void> | undefined;

  constructor(private readonly connection: pg.ClientBase) {}

  /** Sends the statement `send` sends, now if the connection is free, or after those before it. */
  send<T>(send: () => Promise<T>): Promise<T> {
    const previous = this.last;
    const sent = previous === undefined ? sendNow(send) : previous.then(send);
    const answered: Promise<void> = sent
      .then(
        () => this.answered(),
        () => this.answered(),
      )
      .then(() => {
        if (this.last === answered) this.last = undefined;
      });
    this.last = answered;
    return sent;
  }

  /** Resolves once every statement given so far has been answered. */
  idle(): Promise<void> {
    return this.last ?? this.answered();
  }

  /**
   * A failed statement rejects at its ErrorResponse; the ReadyForQuery after it may come in a
   * later read, and until then the connection is still busy.
   */
  private answered(): Promise<void> {
    return whenAnswered(this.connection);
  }
}

function sendNow<T>(send: () => Promise<T>): Promise<T> {
  try {
    return send();
  } catch (error) {
    return Promise.reject(error);
  }
}
