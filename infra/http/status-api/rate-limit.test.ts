import { afterEach, describe, expect, it } from 'vitest';
import { RateLimiter } from './rate-limit.js';

describe('RateLimiter (token buckets)', () => {
  let clock = 0;
  const limiters: RateLimiter[] = [];
  const limiter = (perMinute: number, maxKeys?: number) => {
    const l = new RateLimiter({ perMinute, now: () => clock, maxKeys });
    limiters.push(l);
    return l;
  };
  afterEach(() => {
    while (limiters.length) limiters.pop()?.stop();
    clock = 0;
  });

  it('allows a burst of perMinute, then one request per 60/perMinute seconds', () => {
    const l = limiter(6);
    const burst = Array.from({ length: 7 }, () => l.take('a'));
    expect(burst.map((d) => d.allowed)).toEqual([true, true, true, true, true, true, false]);
    expect(burst[5]?.remaining).toBe(0);
    expect(burst[6]?.retryAfterSeconds).toBe(10);
    clock += 9_000;
    expect(l.take('a')).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
    clock += 1_000;
    expect(l.take('a').allowed).toBe(true);
    expect(l.take('b').allowed).toBe(true); // every key has its own bucket
  });

  it('forgets refilled buckets and keeps at most maxKeys', () => {
    const l = limiter(60, 3);
    for (const k of ['a', 'b', 'c', 'd']) l.take(k);
    expect(l.size).toBeLessThanOrEqual(3);
    clock += 60_000;
    l.sweep();
    expect(l.size).toBe(0);
  });
});
