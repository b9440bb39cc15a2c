import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { idempotencyKey, MAX_RETRY_AFTER_MS, parseRetryAfter, signatureHeader } from './signing.js';

describe('signing and keys', () => {
  it('derives one stable UUIDv5-shaped key per hook and event', () => {
    const e = '0192f6a0-0000-7000-8000-000000000001';
    const k = idempotencyKey('crm', e);
    expect(k).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(idempotencyKey('crm', e)).toBe(k);
    expect(idempotencyKey('audit', e)).not.toBe(k);
    expect(idempotencyKey('crm', '0192f6a0-0000-7000-8000-000000000002')).not.toBe(k);
  });

  it('signs "t.body" with HMAC-SHA256 as SPEC.md says', () => {
    const body = Buffer.from('{"id":"x","data":{"ü":1}}');
    const h = signatureHeader('shared-secret', body, 1_764_158_400);
    const mac = createHmac('sha256', 'shared-secret')
      .update(`1764158400.${body.toString('utf8')}`)
      .digest('hex');
    expect(h).toBe(`t=1764158400,v1=${mac}`);
  });

  it('reads Retry-After as seconds or an HTTP date, and caps it', () => {
    const now = Date.parse('2026-11-26T10:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Thu, 26 Nov 2026 10:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Thu, 26 Nov 2026 09:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('999999', now)).toBe(MAX_RETRY_AFTER_MS);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('-5', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});
