import { describe, expect, it } from '@jest/globals';
import { InFlight } from '../../../lib/transaction/in-flight.js';

describe('InFlight', () => {
  it('reports a failure that happened before settled() was called, once', async () => {
    const inFlight = new InFlight();
    inFlight.track(Promise.reject(new Error('early')));
    inFlight.track(Promise.resolve());
    await new Promise((resolve) => setImmediate(resolve));
    await expect(inFlight.settled()).rejects.toThrow('early');
    await expect(inFlight.settled()).resolves.toBeUndefined();
  });

  it('waits for every tracked promise, those tracked meanwhile included, before it rejects', async () => {
    const inFlight = new InFlight();
    const order: string[] = [];
    let finishSlow!: () => void;
    const slow = new Promise<void>((resolve) => (finishSlow = resolve)).then(() => {
      order.push('slow');
      inFlight.track(Promise.resolve().then(() => order.push('late')));
    });
    inFlight.track(slow);
    inFlight.track(Promise.reject(new Error('first')));
    inFlight.track(Promise.reject(new Error('second')));
    const settled = inFlight.settled().catch((error: Error) => order.push(error.message));
    setImmediate(finishSlow);
    await settled;
    expect(order).toEqual(['slow', 'late', 'first']);
  });
});
