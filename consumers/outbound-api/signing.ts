import { createHmac } from 'node:crypto';

/** Moved down to infra so that whoever publishes an event records its calls with the same key. */
export { idempotencyKey } from '../../infra/db/repositories/follow-ups.repository.js';

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
