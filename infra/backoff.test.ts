import { describe, expect, it } from 'vitest';
import { backoffMs, backoffSteps } from './backoff.js';

describe('backoffMs', () => {
  const b = { baseMs: 1_000, factor: 4, maxMs: 3_600_000 };

  it('grows by the factor from the base and stops at the cap', () => {
    const none = () => 0;
    expect([0, 1, 2, 3, 4, 5, 6, 7, 30].map((n) => backoffMs(b, n, 0, none))).toEqual([
      1_000, 4_000, 16_000, 64_000, 256_000, 1_024_000, 3_600_000, 3_600_000, 3_600_000,
    ]);
  });

  it('draws the wait from the lower part of the step only, never above it', () => {
    expect(backoffMs(b, 2, 0, () => 0.999_999)).toBeCloseTo(8_000, 0);
    expect(backoffMs({ ...b, jitter: 0.25 }, 2, 0, () => 1)).toBe(12_000);
    expect(backoffMs({ ...b, jitter: 0 }, 2, 0, () => 1)).toBe(16_000);
  });

  it('never waits less than the other side asked for', () => {
    expect(backoffMs(b, 0, 90_000, () => 0)).toBe(90_000);
  });

  it('lists the steps up to the cap once', () => {
    expect(backoffSteps(b)).toEqual([1_000, 4_000, 16_000, 64_000, 256_000, 1_024_000, 3_600_000]);
    expect(backoffSteps({ baseMs: 100, maxMs: 100 })).toEqual([100]);
  });
});
