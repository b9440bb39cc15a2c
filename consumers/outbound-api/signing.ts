import { createHash, createHmac } from 'node:crypto';

/** Name space of Postroom's idempotency keys (a fixed random UUID, as UUIDv5 wants one). */
const KEY_NAMESPACE = Buffer.from('7d1c4a52e0b64f3f9a0e8a2f4c1b9d63', 'hex');

/**
 * The `Idempotency-Key` of one hook's call for one event: a UUIDv5 (RFC 9562, SHA-1 name-based) of
 * `<hook name>\n<event id>`, so every retry, redelivery or replay of the same event to the same hook
 * carries the same key, and no two hooks share one.
 */
export function idempotencyKey(hook: string, eventId: string): string {
  const hash = createHash('sha1').update(KEY_NAMESPACE).update(`${hook}\n${eventId}`, 'utf8').digest();
  const b = hash.subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * The `X-Postroom-Signature` value for a body: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`,
 * computed over the exact bytes sent.
 */
export function signatureHeader(secret: string, body: Buffer, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.`, 'utf8').update(body).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

/** The most a target may ask Postroom to wait with `Retry-After` (longer answers are cut to this). */
export const MAX_RETRY_AFTER_MS = 60 * 60 * 1000;

/**
 * Milliseconds a `Retry-After` header asks for (delay-seconds or an HTTP date, RFC 9110 10.2.3), at
 * most `MAX_RETRY_AFTER_MS`; undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!v) return undefined;
  let ms: number;
  if (/^\d+$/.test(v)) ms = Number(v) * 1000;
  else {
    // An HTTP date names its day and month; bare numbers such as "-5" are not dates here.
    if (!/[a-z]{3}/i.test(v)) return undefined;
    const at = Date.parse(v);
    if (Number.isNaN(at)) return undefined;
    ms = at - now;
  }
  return Math.min(Math.max(0, ms), MAX_RETRY_AFTER_MS);
}
