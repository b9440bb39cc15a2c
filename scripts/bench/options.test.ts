import { describe, expect, it } from 'vitest';
import { readBenchOptions, storageModes } from './options.js';

describe('benchmark options', () => {
  it('has defaults, and a flag wins over its variable', () => {
    const o = readBenchOptions(['--emails', '300'], { BENCH_EMAILS: '100', BENCH_RATE: '20' });
    expect(o.BENCH_EMAILS).toBe(300);
    expect(o.BENCH_RATE).toBe(20);
    expect(o.BENCH_PACED_EMAILS).toBe(300);
    expect(o.BENCH_BACKLOG_EMAILS).toBe(300);
    expect(storageModes(o)).toEqual(['local', 'split', 'drive']);
  });

  it('makes --quick a smoke run whose values can still be overridden', () => {
    const o = readBenchOptions(['--quick', '--storage=drive'], { BENCH_PACED_EMAILS: '10' });
    expect(o).toMatchObject({
      BENCH_EMAILS: 200,
      BENCH_PACED_EMAILS: 10,
      BENCH_STORAGE: 'drive',
      BENCH_IMAP_MAILS: 500,
    });
    expect(readBenchOptions([], {}).BENCH_IMAP_MAILS).toBe(2000);
    expect(readBenchOptions(['--quick', '--backlog', '0'], {}).BENCH_BACKLOG_EMAILS).toBe(0);
  });

  it('names every bad option at once', () => {
    expect(() => readBenchOptions(['--nope', '--emails=0'], { BENCH_STORAGE: 'ftp' })).toThrow(
      /unknown argument --nope[\s\S]*BENCH_EMAILS[\s\S]*BENCH_STORAGE/,
    );
  });
});
