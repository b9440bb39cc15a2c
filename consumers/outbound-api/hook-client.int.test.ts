import dc from 'node:diagnostics_channel';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startHookTarget, verifySignature, type HookTarget } from '../../test/hook-target.js';
import { normalizeHost, type Resolver } from '../../infra/outbound/address-policy.js';
import { attemptHookCall, type HookClientOptions } from './hook-client.js';
import type { Hook } from './hooks-file.js';

const body = Buffer.from(JSON.stringify({ id: 'e1', type: 'email.processed', data: { subject: 'Grüße' } }));
const req = { body, idempotencyKey: '6f1c2d3e-0000-5000-8000-000000000001', eventType: 'email.processed' };

const hook = (url: string, extra: Partial<Hook> = {}): Hook => ({
  name: 'crm',
  url,
  events: ['email.processed'],
  method: 'POST',
  headers: {},
  secret: null,
  timeoutMs: 2_000,
  maxRetryHours: 24,
  when: null,
  ...extra,
});

const opts = (allow: string[], resolve?: Resolver): HookClientOptions => ({
  allowHosts: new Set(allow.map(normalizeHost)),
  ...(resolve ? { resolve } : {}),
});

describe('one hook call attempt, against a local target', () => {
  let target: HookTarget;
  let other: HookTarget;
  let sockets = 0;
  const countSocket = () => {
    sockets += 1;
  };

  beforeAll(() => dc.subscribe('net.client.socket', countSocket));
  afterAll(() => dc.unsubscribe('net.client.socket', countSocket));
  beforeEach(async () => {
    target = await startHookTarget();
    other = await startHookTarget();
    sockets = 0;
  });
  afterEach(async () => {
    await target.close();
    await other.close();
  });

  it('sends the exact bytes, signed so the receiver can verify them, with the key and the hook headers', async () => {
    const h = hook(`${target.url}/hooks/mail?token=abc`, {
      secret: 'shared-secret',
      headers: { 'X-Api-Key': 'k-123' },
    });
    const r = await attemptHookCall(h, req, opts(['127.0.0.1']));
    expect(r).toMatchObject({ outcome: 'succeeded', statusCode: 200, error: null, host: 'up' });
    const [got] = target.requests;
    expect(got?.method).toBe('POST');
    expect(got?.path).toBe('/hooks/mail?token=abc');
    expect(got?.body.equals(body)).toBe(true);
    expect(got?.headers['content-type']).toBe('application/json');
    expect(got?.headers['idempotency-key']).toBe(req.idempotencyKey);
    expect(got?.headers['x-api-key']).toBe('k-123');
    expect(got?.headers['x-postroom-event']).toBe('email.processed');
    const sig = verifySignature(got?.headers['x-postroom-signature'] as string, got!.body, 'shared-secret');
    expect(sig.ok).toBe(true);
    expect(Math.abs(sig.t - Date.now() / 1000)).toBeLessThan(5);
    expect(verifySignature(got?.headers['x-postroom-signature'] as string, got!.body, 'wrong').ok).toBe(
      false,
    );
  });

  it('sends no signature without a secret, and uses the hook method', async () => {
    await attemptHookCall(hook(target.url, { method: 'PUT' }), req, opts(['127.0.0.1']));
    expect(target.requests[0]?.method).toBe('PUT');
    expect(target.requests[0]?.headers['x-postroom-signature']).toBeUndefined();
  });

  it('retries 5xx and 429 with the Retry-After asked for; other 4xx are final', async () => {
    const h = hook(target.url);
    const o = opts(['127.0.0.1']);
    target.reply(
      { status: 503, headers: { 'retry-after': '2' }, body: 'maintenance' },
      { status: 429, headers: { 'retry-after': new Date(Date.now() + 30_000).toUTCString() } },
      { status: 500 },
      { status: 422, body: '{"error":"unknown customer"}' },
      { status: 404 },
    );
    expect(await attemptHookCall(h, req, o)).toMatchObject({
      outcome: 'retry',
      statusCode: 503,
      retryAfterMs: 2_000,
      host: 'down',
      error: 'OUTBOUND.HTTP_503: crm answered 503 (Retry-After 2 s): maintenance',
    });
    const limited = await attemptHookCall(h, req, o);
    expect(limited).toMatchObject({ outcome: 'retry', statusCode: 429, host: 'up' });
    expect(limited.retryAfterMs).toBeGreaterThan(25_000);
    expect(await attemptHookCall(h, req, o)).toMatchObject({
      outcome: 'retry',
      statusCode: 500,
      host: 'down',
    });
    expect(await attemptHookCall(h, req, o)).toMatchObject({
      outcome: 'failed',
      statusCode: 422,
      error: 'OUTBOUND.HTTP_422: crm answered 422: {"error":"unknown customer"}',
    });
    expect(await attemptHookCall(h, req, o)).toMatchObject({ outcome: 'failed', statusCode: 404 });
  });

  it('gives up on a slow target at the hook timeout', async () => {
    target.reply({ status: 200, delayMs: 3_000 });
    const r = await attemptHookCall(hook(target.url, { timeoutMs: 300 }), req, opts(['127.0.0.1']));
    expect(r).toMatchObject({
      outcome: 'retry',
      statusCode: null,
      host: 'down',
      error: 'OUTBOUND.TIMEOUT: crm did not answer within 300 ms',
    });
    expect(r.durationMs).toBeGreaterThanOrEqual(290);
    expect(r.durationMs).toBeLessThan(1_500);
  });

  it('retries a refused connection', async () => {
    const port = target.port;
    await target.close();
    const r = await attemptHookCall(hook(`http://127.0.0.1:${port}/`), req, opts(['127.0.0.1']));
    expect(r).toMatchObject({ outcome: 'retry', statusCode: null, host: 'down' });
    expect(r.error).toContain('ECONNREFUSED');
    target = await startHookTarget();
  });

  it('reads no more than it needs of a huge answer', async () => {
    target.reply({ status: 500, body: 'x'.repeat(8 * 1024 * 1024) });
    const r = await attemptHookCall(hook(target.url), req, opts(['127.0.0.1']));
    expect(r).toMatchObject({ outcome: 'retry', statusCode: 500 });
    expect(r.error!.length).toBeLessThan(300);
  });

  describe('refuses private targets before any connection', () => {
    const resolve: Resolver = async (name) => {
      if (name === 'internal.test') return [{ address: '10.0.0.8', family: 4 }];
      if (name === 'mixed.test')
        return [
          { address: '93.184.216.34', family: 4 },
          { address: '127.0.0.1', family: 4 },
        ];
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    };
    const cases: [string, (port: number) => string, Resolver | undefined][] = [
      ['loopback 127.0.0.1', (p) => `http://127.0.0.1:${p}/`, undefined],
      ['cloud metadata 169.254.169.254', () => 'http://169.254.169.254/latest/meta-data/', undefined],
      ['hex 0x7f000001', (p) => `http://0x7f000001:${p}/`, undefined],
      ['decimal 2130706433', (p) => `http://2130706433:${p}/`, undefined],
      ['octal 0177.0.0.1', (p) => `http://0177.0.0.1:${p}/`, undefined],
      ['IPv4-mapped [::ffff:127.0.0.1]', (p) => `http://[::ffff:127.0.0.1]:${p}/`, undefined],
      ['localhost, by the system resolver', (p) => `http://localhost:${p}/`, undefined],
      ['a name resolving to 10.0.0.8', (p) => `http://internal.test:${p}/`, resolve],
      ['a name with one private address among public ones', (p) => `http://mixed.test:${p}/`, resolve],
      ['a file: URL', () => 'file:///etc/passwd', undefined],
    ];
    it.each(cases)('%s', async (_label, url, resolver) => {
      const r = await attemptHookCall(hook(url(target.port)), req, opts([], resolver));
      expect(r).toMatchObject({ outcome: 'failed', statusCode: null, host: 'untouched' });
      expect(r.error).toMatch(/^OUTBOUND\.BLOCKED: /);
      expect(target.connections()).toBe(0);
      expect(sockets).toBe(0);
    });
  });

  it('does not follow a redirect from an allowed host to a private one', async () => {
    target.reply(
      { status: 302, headers: { location: `http://localhost:${other.port}/steal?secret=1` } },
      { status: 307, headers: { location: 'http://169.254.169.254/latest/meta-data/' } },
    );
    const o = opts(['127.0.0.1']);
    const first = await attemptHookCall(hook(target.url), req, o);
    expect(first).toMatchObject({
      outcome: 'failed',
      statusCode: 302,
      error: `OUTBOUND.REDIRECT: crm answered 302 to http://localhost:${other.port}/steal; redirects are not followed`,
    });
    const second = await attemptHookCall(hook(target.url), req, o);
    expect(second).toMatchObject({ outcome: 'failed', statusCode: 307 });
    expect(other.connections()).toBe(0);
    expect(target.requests).toHaveLength(2);
    expect(sockets).toBe(2);
  });

  it('connects to the address it checked, with no second lookup', async () => {
    const asked: string[] = [];
    // A rebinding resolver: the first answer is the checked one; any later answer would be elsewhere.
    const resolve: Resolver = async (name) => {
      asked.push(name);
      return [{ address: asked.length === 1 ? '127.0.0.1' : '10.9.9.9', family: 4 }];
    };
    const r = await attemptHookCall(
      hook(`http://hooks.test:${target.port}/in`),
      req,
      opts(['hooks.test'], resolve),
    );
    expect(r).toMatchObject({ outcome: 'succeeded', statusCode: 200 });
    expect(asked).toEqual(['hooks.test']);
    expect(target.requests[0]?.headers.host).toBe(`hooks.test:${target.port}`);
  });
});
