import { describe, expect, it } from 'vitest';
import { ByteBudget } from './byte-budget.js';

const tick = () => new Promise((r) => setImmediate(r));

describe('byte budget', () => {
  it('lets small messages run together and makes a large one wait for room', async () => {
    const budget = new ByteBudget(100);
    const a = await budget.take(40);
    const b = await budget.take(40);
    expect(budget.held).toBe(80);
    let bigRuns = false;
    const big = budget.take(60).then((give) => ((bigRuns = true), give));
    await tick();
    expect(bigRuns).toBe(false);
    a();
    await tick();
    expect(bigRuns).toBe(true); // 40 + 60 fit
    b();
    (await big)();
    expect(budget.held).toBe(0);
  });

  it('runs a message larger than the whole budget alone, and keeps arrival order', async () => {
    const budget = new ByteBudget(100);
    const small = await budget.take(10);
    const order: string[] = [];
    const huge = budget.take(500).then((give) => (order.push('huge'), give));
    const later = budget.take(10).then((give) => (order.push('later'), give));
    await tick();
    expect(order).toEqual([]); // the small one behind the huge one does not overtake it
    small();
    await tick();
    expect(order).toEqual(['huge']);
    expect(budget.held).toBe(500);
    (await huge)();
    await tick();
    expect(order).toEqual(['huge', 'later']);
    const give = await later;
    give();
    give(); // giving back twice gives back once
    expect(budget.held).toBe(0);
  });

  it('gives the bytes back when the work fails', async () => {
    const budget = new ByteBudget(10);
    await expect(budget.with(8, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(budget.held).toBe(0);
  });
});
