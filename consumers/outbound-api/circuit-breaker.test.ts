import { describe, expect, it } from 'vitest';
import { CircuitBreakers } from './circuit-breaker.js';

describe('circuit breaker', () => {
  const setup = () => {
    let now = 1_000_000;
    const b = new CircuitBreakers({ failureThreshold: 3, coolDownMs: 10_000, now: () => now });
    return { b, tick: (ms: number) => (now += ms) };
  };

  it('opens after consecutive failures, fails fast while open, and only for that host', () => {
    const { b, tick } = setup();
    b.failure('a:443');
    b.failure('a:443');
    b.success('a:443'); // a success resets the count
    for (let i = 0; i < 3; i++) {
      expect(b.acquire('a:443')).toEqual({ allowed: true, probe: false });
      b.failure('a:443');
    }
    expect(b.state('a:443')).toBe('open');
    tick(4_000);
    expect(b.acquire('a:443')).toMatchObject({
      allowed: false,
      retryAfterMs: 6_000,
      reason: 'circuit open for a:443 after 3 failures',
    });
    expect(b.acquire('b:443')).toEqual({ allowed: true, probe: false });
  });

  it('half-opens after the cool-down with one probe; success closes, failure reopens', () => {
    const { b, tick } = setup();
    for (let i = 0; i < 3; i++) b.failure('a');
    tick(10_000);
    expect(b.state('a')).toBe('half-open');
    expect(b.acquire('a')).toEqual({ allowed: true, probe: true });
    expect(b.acquire('a')).toMatchObject({
      allowed: false,
      reason: expect.stringContaining('probe is in flight'),
    });
    b.failure('a', true);
    expect(b.state('a')).toBe('open');
    // A failed probe keeps the circuit open, twice as long.
    expect(b.acquire('a')).toMatchObject({ allowed: false, retryAfterMs: 20_000 });
    tick(20_000);
    expect(b.acquire('a')).toEqual({ allowed: true, probe: true });
    b.success('a');
    expect(b.state('a')).toBe('closed');
    expect(b.acquire('a')).toEqual({ allowed: true, probe: false });
  });

  it('gives the probe to the next caller when a probe ended without reaching the host', () => {
    const { b, tick } = setup();
    for (let i = 0; i < 3; i++) b.failure('a');
    tick(10_000);
    expect(b.acquire('a')).toMatchObject({ probe: true });
    b.release('a', true);
    expect(b.acquire('a')).toMatchObject({ allowed: true, probe: true });
  });

  it('holds a host that asked to wait with Retry-After', () => {
    const { b, tick } = setup();
    b.hold('a', 5_000);
    expect(b.acquire('a')).toMatchObject({
      allowed: false,
      retryAfterMs: 5_000,
      reason: expect.stringContaining('Retry-After'),
    });
    tick(5_000);
    expect(b.acquire('a')).toEqual({ allowed: true, probe: false });
  });

  it('lets retries through an open circuit, not first attempts, and a retry that succeeds closes it', () => {
    const { b, tick } = setup();
    for (let i = 0; i < 3; i++) b.failure('a');
    expect(b.acquire('a')).toMatchObject({ allowed: false });
    expect(b.acquire('a', true)).toEqual({ allowed: true, probe: false });
    // A failing retry does not push the probe's time back.
    tick(4_000);
    b.failure('a');
    expect(b.acquire('a')).toMatchObject({ allowed: false, retryAfterMs: 6_000 });
    expect(b.acquire('a', true)).toEqual({ allowed: true, probe: false });
    b.success('a');
    expect(b.acquire('a')).toEqual({ allowed: true, probe: false });
  });

  it('holds retries too while a host asked to wait', () => {
    const { b } = setup();
    b.hold('a', 5_000);
    expect(b.acquire('a', true)).toMatchObject({ allowed: false, retryAfterMs: 5_000 });
  });

  it('doubles the cool-down with each failed probe, up to the maximum', () => {
    let now = 0;
    const b = new CircuitBreakers({
      failureThreshold: 1,
      coolDownMs: 1_000,
      maxCoolDownMs: 5_000,
      now: () => now,
    });
    b.failure('a');
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      const denied = b.acquire('a');
      if (denied.allowed) throw new Error('expected the circuit open');
      waits.push(denied.retryAfterMs);
      now += denied.retryAfterMs;
      expect(b.acquire('a')).toEqual({ allowed: true, probe: true });
      b.failure('a', true);
    }
    expect(waits).toEqual([1_000, 2_000, 4_000, 5_000, 5_000]);
  });
});
