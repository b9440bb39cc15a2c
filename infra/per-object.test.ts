import { describe, expect, it } from 'vitest';
import { perObject } from './per-object.js';

describe('perObject', () => {
  it('makes one value per key object, on first use', () => {
    let made = 0;
    const of = perObject((key: { name: string }) => ({ key: key.name, n: ++made }));
    const a = { name: 'a' };
    const b = { name: 'a' }; // equal, but another object
    expect(made).toBe(0);
    expect(of(a)).toBe(of(a));
    expect(of(b)).not.toBe(of(a));
    expect([of(a).n, of(b).n, made]).toEqual([1, 2, 2]);
  });
});
