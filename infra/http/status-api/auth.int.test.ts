import { createHmac, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostroom, type Postroom } from '../../../main.js';
import { deleteTestTopology, testLogger, testNamespace } from '../../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../../test/db.js';
import { postroomTopology } from '../../broker/subscriptions.js';
import { loadConfig } from '../../config.js';
import { createApp } from '../app.js';
import { buildOpenApi } from '../openapi.js';
import { createStatusRouter, startStatusApi } from './index.js';
import { documentValidator, type DocumentValidator } from './openapi-check.js';
import { TEST_AMQP_URL } from '../../../test/env.js';

const SECRET = 'a-test-secret-of-more-than-32-bytes-0123456789';
const b64u = (s: string) => Buffer.from(s).toString('base64url');
const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Signs a JWT the way an identity provider would (HS256 unless told otherwise). */
function jwt(claims: Record<string, unknown>, opts: { secret?: string; alg?: string } = {}): string {
  const alg = opts.alg ?? 'HS256';
  const h = b64u(JSON.stringify({ alg, typ: 'JWT' }));
  const p = b64u(JSON.stringify(claims));
  const sig =
    alg === 'none'
      ? ''
      : createHmac(alg === 'HS512' ? 'sha512' : 'sha256', opts.secret ?? SECRET)
          .update(`${h}.${p}`)
          .digest('base64url');
  return `${h}.${p}.${sig}`;
}

describe('status API: authentication, rate limits and CORS', () => {
  let t: TestDatabase;
  const apps: Postroom[] = [];
  const namespaces: string[] = [];
  let open: Postroom; // tokens t1, t2 and JWTs; generous limit; CORS off
  let strict: Postroom; // 3 requests a minute; CORS for https://ops.example
  let doc: DocumentValidator;

  async function start(env: Record<string, string>): Promise<Postroom> {
    const namespace = testNamespace('auth');
    namespaces.push(namespace);
    const config = loadConfig({
      AMQP_URL: TEST_AMQP_URL,
      ROLES: 'api',
      MYSQL_URL: t.url,
      LOG_LEVEL: 'silent',
      ...env,
    });
    const app = await startPostroom(config, {
      log: testLogger(),
      namespace,
      httpPort: 0,
      starters: { api: (ctx) => startStatusApi(ctx) },
    });
    apps.push(app);
    await app.broker.waitConnected();
    return app;
  }

  beforeAll(async () => {
    t = await createTestDatabase('apiauth');
    open = await start({ API_TOKENS: 't1,t2', JWT_SECRET: SECRET, API_RATE_LIMIT_PER_MINUTE: '100000' });
    strict = await start({
      API_TOKENS: 't1,t2',
      API_RATE_LIMIT_PER_MINUTE: '3',
      API_CORS_ORIGINS: 'https://ops.example',
    });
    doc = documentValidator(
      (await (await fetch(`http://127.0.0.1:${open.port}/openapi.json`)).json()) as Record<string, unknown>,
    );
  });
  afterAll(async () => {
    for (const a of apps) await a.stop();
    for (const ns of namespaces) await deleteTestTopology(postroomTopology({ namespace: ns }));
    await t?.drop();
  });

  async function call(
    app: Postroom | Server,
    path: string,
    init: RequestInit & { token?: string | null } = {},
  ) {
    const port = 'port' in app ? app.port : (app.address() as { port: number }).port;
    const headers = new Headers(init.headers);
    if (init.token) headers.set('authorization', `Bearer ${init.token}`);
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { ...init, headers });
    const body: unknown = (res.headers.get('content-type') ?? '').includes('json')
      ? await res.json()
      : await res.text();
    return { status: res.status, headers: res.headers, body: body as any }; // eslint-disable-line @typescript-eslint/no-explicit-any
  }

  it('keeps probes, metrics and docs public, and documents every API route as bearer-protected', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json', '/docs/'])
      expect((await call(open, path)).status, path).toBe(200);
    const d = (await call(open, '/openapi.json')).body;
    expect(d.openapi).toBe('3.1.0');
    expect(Object.keys(d.paths)).toEqual(
      expect.arrayContaining([
        '/api/v1/emails',
        '/api/v1/emails/{id}',
        '/api/v1/attachments/{id}',
        '/api/v1/attachments/{id}/thumbnail',
        '/api/v1/stats',
        '/api/v1/dead-letters',
        '/api/v1/dead-letters/{id}/replay',
      ]),
    );
    expect(d.security).toEqual([{ bearer: [] }]);
    expect(d.paths['/healthz'].get.security).toEqual([]);
    const params = (d.paths['/api/v1/emails'].get.parameters as { name: string }[]).map((p) => p.name);
    expect(params).toEqual(['messageId', 'status', 'from', 'since', 'limit', 'cursor']);
    expect(Object.keys(d.components.schemas)).toEqual(
      expect.arrayContaining([
        'Error',
        'Email',
        'EmailList',
        'Attachment',
        'Stats',
        'DeadLetterList',
        'ReplayResult',
      ]),
    );
  });

  it('answers 401 JSON with a Bearer challenge to every API route without a valid token', async () => {
    const d = (await call(open, '/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
    const routes = Object.entries(d.paths).filter(([p]) => p.startsWith('/api/'));
    expect(routes.length).toBe(11);
    for (const [route, ops] of routes)
      for (const method of Object.keys(ops)) {
        const path = route.replace('{id}', randomUUID()).replace('{name}', 'nightly');
        for (const token of [null, 'nope']) {
          const r = await call(open, path, { method: method.toUpperCase(), token });
          expect(r.status, `${method} ${path} ${token}`).toBe(401);
          expect(r.headers.get('www-authenticate')).toMatch(/^Bearer realm="postroom"/);
          doc.expectValid(route, method, 401, r.body);
        }
      }
    expect((await call(open, '/api/v1/stats')).body.error.code).toBe('AUTH.MISSING_TOKEN');
    expect(
      (await call(open, '/api/v1/stats', { headers: { authorization: 'Basic dDE6dDE=' } })).body.error.code,
    ).toBe('AUTH.MISSING_TOKEN');
    const wrong = await call(open, '/api/v1/stats', { token: 't3' });
    expect(wrong.body.error.code).toBe('AUTH.INVALID_TOKEN');
    expect(wrong.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect((await call(open, '/api/v1/nope')).status).toBe(401);
    expect((await call(open, '/api/v1/nope', { token: 't1' })).body.error.code).toBe('NOT_FOUND');
    for (const token of ['t1', 't2'])
      expect((await call(open, '/api/v1/emails', { token })).status).toBe(200);
    // Broken input is a JSON 400, never a stack trace.
    const broken = await call(open, '/api/v1/emails/%E0%A4%A', { token: 't1' });
    expect(broken.status).toBe(400);
    expect(broken.body.error.code).toEqual(expect.any(String));
    expect(JSON.stringify(broken.body)).not.toMatch(/node_modules|\.ts:\d+|\n\s+at /);
  });

  it('accepts HS256 JWTs signed with JWT_SECRET and refuses expired, early, forged or other-algorithm ones', async () => {
    const ok = async (token: string) => (await call(open, '/api/v1/emails', { token })).status;
    const refused = async (token: string) => {
      const r = await call(open, '/api/v1/emails', { token });
      expect(r.status).toBe(401);
      doc.expectValid('/api/v1/emails', 'get', 401, r.body);
      return r.body.error.code as string;
    };
    const now = nowSeconds();
    expect(await ok(jwt({ sub: 'ops', exp: now + 600, iat: now }))).toBe(200);
    expect(await refused(jwt({ sub: 'ops' }))).toBe('AUTH.INVALID_TOKEN'); // no exp: it would never expire
    expect(await ok(jwt({ sub: 'ops', exp: now - 5 }))).toBe(200); // within the clock-skew leeway
    expect(await refused(jwt({ sub: 'ops', exp: now - 120 }))).toBe('AUTH.TOKEN_EXPIRED');
    expect(await refused(jwt({ sub: 'ops', exp: now + 1200, nbf: now + 600 }))).toBe(
      'AUTH.TOKEN_NOT_YET_VALID',
    );
    expect(await refused(jwt({ sub: 'ops', exp: String(now + 600) }))).toBe('AUTH.INVALID_TOKEN');
    expect(await refused(jwt({ sub: 'ops' }, { secret: 'another-secret-another-secret-another' }))).toBe(
      'AUTH.INVALID_TOKEN',
    );
    expect(await refused(jwt({ sub: 'ops' }, { alg: 'HS512' }))).toBe('AUTH.INVALID_TOKEN');
    expect(await refused(jwt({ sub: 'ops' }, { alg: 'none' }))).toBe('AUTH.INVALID_TOKEN');
    const [h, , s] = jwt({ sub: 'ops' }).split('.');
    expect(await refused(`${h}.${b64u(JSON.stringify({ sub: 'admin' }))}.${s}`)).toBe('AUTH.INVALID_TOKEN');
    expect(await refused('not.a.jwt')).toBe('AUTH.INVALID_TOKEN');
  });

  it('answers 401 to everything when neither API_TOKENS nor JWT_SECRET is set', async () => {
    const deps = {
      db: open.database.db,
      broker: open.broker,
      blobs: {
        put: async () => ({ sha256: '', size: 0 }),
        open: async () => null as never,
        read: async () => Buffer.alloc(0),
        stat: async () => null,
      },
      log: testLogger(),
      files: async () => null as never,
      queueDepths: async () => ({ queues: null, deadQueue: null }),
    };
    const { app, mount } = createApp({ log: testLogger(), readiness: [], openapi: () => buildOpenApi() });
    mount('/api/v1', createStatusRouter(deps, { tokens: [], limiter: null }));
    const server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, () => resolve(s));
    });
    try {
      for (const token of [null, '', 't1', jwt({ sub: 'ops' })]) {
        const r = await call(server, '/api/v1/emails', { token });
        expect(r.status).toBe(401);
        expect(r.body.error.code).toMatch(/^AUTH\./);
      }
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('limits each token to its rate, with 429 JSON and Retry-After, and limits failed attempts per client', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await call(strict, '/api/v1/emails', { token: 't1' });
      expect(r.status).toBe(200);
      expect(r.headers.get('ratelimit-remaining')).toBe(String(2 - i));
    }
    const limited = await call(strict, '/api/v1/emails', { token: 't1' });
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('RATE_LIMITED');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(15);
    doc.expectValid('/api/v1/emails', 'get', 429, limited.body);
    expect((await call(strict, '/api/v1/emails', { token: 't2' })).status).toBe(200); // per token

    // Failed attempts from one client share a bucket; a JWT means nothing to a server without JWT_SECRET.
    const guesses = [];
    for (const token of [jwt({ sub: 'ops' }), 'guess-1', 'guess-2', 'guess-3'])
      guesses.push((await call(strict, '/api/v1/emails', { token })).status);
    expect(guesses).toEqual([401, 401, 401, 429]);
    // Behind a trusted proxy (loopback by default) each client named in X-Forwarded-For has its own bucket.
    const other = { 'x-forwarded-for': '203.0.113.7' };
    expect((await call(strict, '/api/v1/emails', { token: 'guess-4', headers: other })).status).toBe(401);
  });

  it('believes X-Forwarded-For only from the proxies HTTP_TRUST_PROXY names', async () => {
    const distrusting = await start({
      API_TOKENS: 't1',
      API_RATE_LIMIT_PER_MINUTE: '3',
      HTTP_TRUST_PROXY: '10.0.0.0/8',
    });
    const statuses = [];
    for (const client of ['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.4'])
      statuses.push(
        (
          await call(distrusting, '/api/v1/emails', {
            token: 'guess',
            headers: { 'x-forwarded-for': client },
          })
        ).status,
      );
    // 127.0.0.1 is not in 10.0.0.0/8: the header is ignored, and every guess counts against one address.
    expect(statuses).toEqual([401, 401, 401, 429]);
    expect(() => loadConfig({ HTTP_TRUST_PROXY: 'trust me' })).toThrow(/HTTP_TRUST_PROXY/);
  });

  it('sends CORS headers only to configured origins, and none at all when CORS is off', async () => {
    const preflight = (app: Postroom, origin: string) =>
      call(app, '/api/v1/emails', {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'GET',
          'access-control-request-headers': 'authorization',
        },
      });
    const allowed = await preflight(strict, 'https://ops.example');
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://ops.example');
    expect(allowed.headers.get('access-control-allow-headers')).toContain('Authorization');
    expect(allowed.headers.get('access-control-allow-credentials')).toBeNull();
    const other = await preflight(strict, 'https://evil.example');
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    expect([401, 429]).toContain(other.status); // refused like any request without a token
    const get = await call(strict, '/api/v1/stats', {
      token: 't2',
      headers: { origin: 'https://ops.example' },
    });
    expect(get.headers.get('access-control-allow-origin')).toBe('https://ops.example');
    expect(get.headers.get('vary')).toContain('Origin');
    const off = await preflight(open, 'https://ops.example');
    expect(off.headers.get('access-control-allow-origin')).toBeNull();
  });
});
