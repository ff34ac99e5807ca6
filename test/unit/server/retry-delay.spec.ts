import { describe, expect, it } from '@jest/globals';
import { retryDelay } from '../../../lib/server/retry-delay.js';

describe('retryDelay', () => {
  it('doubles the ceiling each attempt up to the cap', () => {
    const ceiling = (attempt: number) => retryDelay(attempt, 100, 1_000, () => 1);
    expect([1, 2, 3, 4, 5, 10, 60].map(ceiling)).toEqual([100, 200, 400, 800, 1_000, 1_000, 1_000]);
  });

  it('draws uniformly below the ceiling (full jitter), never zero', () => {
    expect(retryDelay(3, 100, 1_000, () => 0.5)).toBe(200);
    expect(retryDelay(3, 100, 1_000, () => 0)).toBe(1);
    const draws = Array.from({ length: 500 }, () => retryDelay(4, 100, 10_000));
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...draws)).toBeLessThanOrEqual(800);
    expect(new Set(draws).size).toBeGreaterThan(100);
  });
});
