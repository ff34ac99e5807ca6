import { describe, expect, it } from '@jest/globals';
import {
  Backoff,
  backoffCeiling,
  backoffDelay,
  fatalBackoffDelay,
} from '../../../lib/listener/backoff.js';

const settings = { initialDelayMs: 100, maxDelayMs: 10_000 };

/** A random source that returns the given values in turn. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

describe('backoff', () => {
  it('doubles the ceiling with each attempt until the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((attempt) => backoffCeiling(attempt, settings))).toEqual([
      200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000,
    ]);
    expect(backoffCeiling(5_000, settings)).toBe(10_000);
  });

  it('draws uniformly between initialDelayMs and the ceiling (full jitter with a floor)', () => {
    expect(backoffDelay(3, settings, () => 0)).toBe(100);
    expect(backoffDelay(3, settings, () => 0.5)).toBe(450);
    expect(backoffDelay(3, settings, () => 0.999999)).toBeCloseTo(800, 2);
    expect(backoffDelay(50, settings, () => 0.999999)).toBeCloseTo(10_000, 1);
  });

  it('never returns a delay below the floor or above the cap, even for a broken random()', () => {
    for (const value of [-1, 2, Number.NaN, Infinity]) {
      const delay = backoffDelay(4, settings, () => value);
      expect(delay).toBeGreaterThanOrEqual(100);
      expect(delay).toBeLessThanOrEqual(1_600);
    }
  });

  it('spreads delays across the whole window', () => {
    let seed = 42;
    // Park–Miller, so the sample is the same on every run.
    const random = () => (seed = (seed * 16_807) % 2_147_483_647) / 2_147_483_647;
    const delays = Array.from({ length: 1_000 }, () => backoffDelay(7, settings, random));
    const mean = delays.reduce((sum, delay) => sum + delay, 0) / delays.length;
    expect(Math.min(...delays)).toBeLessThan(600);
    expect(Math.max(...delays)).toBeGreaterThan(9_500);
    expect(mean).toBeGreaterThan(4_550);
    expect(mean).toBeLessThan(5_550);
  });

  it('paces fatal errors in the top half of the cap', () => {
    expect(fatalBackoffDelay(settings, () => 0)).toBe(5_000);
    expect(fatalBackoffDelay(settings, () => 0.999999)).toBeCloseTo(10_000, 1);
    expect(fatalBackoffDelay({ initialDelayMs: 800, maxDelayMs: 1_000 }, () => 0)).toBe(800);
  });

  it('counts attempts and starts again after reset()', () => {
    const backoff = new Backoff(settings, sequence(1 - Number.EPSILON));
    const first = [backoff.next(false), backoff.next(false), backoff.next(false)];
    expect(first.map(({ attempt }) => attempt)).toEqual([1, 2, 3]);
    expect(first.map(({ delayMs }) => Math.round(delayMs))).toEqual([200, 400, 800]);
    expect(Math.round(backoff.next(true).delayMs)).toBe(10_000);

    backoff.reset();
    const again = backoff.next(false);
    expect(again.attempt).toBe(1);
    expect(Math.round(again.delayMs)).toBe(200);
  });
});
