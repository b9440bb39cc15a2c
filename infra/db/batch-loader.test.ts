import { describe, expect, it } from 'vitest';
import { BatchLoader } from './batch-loader.js';

describe('BatchLoader', () => {
  it('reads the keys asked for in one turn with one load, each caller its own row', async () => {
    const loads: string[][] = [];
    const loader = new BatchLoader<string, string>(async (keys) => {
      loads.push(keys);
      return new Map(keys.filter((k) => k !== 'gone').map((k) => [k, `row ${k}`]));
    });
    const first = await Promise.all(['a', 'b', 'a', 'gone'].map((k) => loader.get(k)));
    expect(first).toEqual(['row a', 'row b', 'row a', undefined]);
    expect(await loader.get('c')).toBe('row c'); // a later turn: a load of its own
    expect(loads).toEqual([['a', 'b', 'gone'], ['c']]);
  });

  it('gives every caller of a failed load its error, and loads again afterwards', async () => {
    let fail = true;
    const loader = new BatchLoader<number, number>(async (keys) => {
      if (fail) throw new Error('connection lost');
      return new Map(keys.map((k) => [k, k * 2]));
    });
    const failed = await Promise.allSettled([loader.get(1), loader.get(2)]);
    expect(failed.map((r) => r.status === 'rejected' && (r.reason as Error).message)).toEqual([
      'connection lost',
      'connection lost',
    ]);
    fail = false;
    expect(await loader.get(2)).toBe(4);
  });

  it('splits a large burst into statements of at most 100 keys', async () => {
    const sizes: number[] = [];
    const loader = new BatchLoader<number, number>(async (keys) => {
      sizes.push(keys.length);
      return new Map(keys.map((k) => [k, k]));
    });
    const all = await Promise.all(Array.from({ length: 250 }, (_, i) => loader.get(i)));
    expect(all).toEqual(Array.from({ length: 250 }, (_, i) => i));
    expect(sizes).toEqual([100, 100, 50]);
  });
});
