import { describe, expect, it } from 'vitest';
import type { AmqpCeiling, ImapCeiling, MysqlCeiling } from './ceiling.js';
import type { PhaseResult } from './e2e-results.js';
import { stackFloor } from './report.js';

describe('the floor the stack alone sets', () => {
  const amqp = {
    publishCpu: { clientMs: 0.06, serviceMs: 0.05 },
    consumeCpu: { clientMs: 0.07, serviceMs: 0.05 },
  } as AmqpCeiling;
  const imap = { fetchCpu: { clientMs: 0.2, serviceMs: 0.1 }, parseCpuMs: 1.0 } as ImapCeiling;
  const backlog = {
    done: 2000,
    published: 10_000,
    handlers: [
      { labels: { queue: 'attachment-analysis' }, count: 2000 },
      { labels: { queue: 'drive-upload' }, count: 2000 },
    ],
  } as unknown as PhaseResult;

  it('counts the parse once and the broker as often as the phase published and delivered per email', () => {
    const f = stackFloor({ amqp, mysql: {} as MysqlCeiling, imap }, backlog)!;
    expect(f.events).toBe(5);
    expect(f.deliveries).toBe(2);
    expect(f.parse).toBeCloseTo(1.3);
    expect(f.broker).toBeCloseTo(5 * 0.11 + 2 * 0.12);
    expect(f.total).toBeCloseTo(1.3 + 0.79);
  });

  it('has no floor without the IMAP ceiling or without a mail done', () => {
    expect(stackFloor({ amqp, mysql: {} as MysqlCeiling, imap: null }, backlog)).toBeNull();
    expect(stackFloor({ amqp, mysql: {} as MysqlCeiling, imap }, { ...backlog, done: 0 })).toBeNull();
  });
});
