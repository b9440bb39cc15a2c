import { describe, expect, it } from 'vitest';
import { createRateLimiter } from './rate-limiter.js';

/** A limiter on a fake clock: sleeping moves the clock; returns when each acquire got its slot. */
function onFakeClock(opts: Parameters<typeof createRateLimiter>[0] = {}) {
  let now = 0;
  const limiter = createRateLimiter({
    ...opts,
    now: () => now,
    sleep: async (ms) => {
      now += ms;
    },
  });
  const at = async (chatId: string) => {
    await limiter.acquire(chatId);
    return now;
  };
  return { limiter, at, advance: (ms: number) => (now += ms) };
}

describe('Telegram rate limiter', () => {
  it('spaces messages to one private chat a second apart, and to a group three seconds apart', async () => {
    const { at } = onFakeClock();
    expect([await at('1'), await at('1'), await at('1')]).toEqual([0, 1000, 2000]);
    const g = onFakeClock();
    expect([await g.at('-100'), await g.at('-100')]).toEqual([0, 3000]);
  });

  it('keeps to 30 messages a second overall without holding other chats up behind a busy one', async () => {
    const { at } = onFakeClock();
    const times: number[] = [];
    for (let i = 0; i < 60; i++) times.push(await at(String(i)));
    expect(times[29]).toBeLessThan(1000);
    expect(times[30]).toBeGreaterThanOrEqual(1000);
    expect(times[59]).toBeLessThan(2000);
  });

  it('keeps a chat quiet after a 429 for its retry_after', async () => {
    const { limiter, at } = onFakeClock();
    await at('7');
    limiter.backOff('7', 5000);
    expect(limiter.delayFor('7')).toBe(5000);
    expect(await at('7')).toBe(5000);
    expect(await at('8')).toBeLessThan(5100);
  });
});
