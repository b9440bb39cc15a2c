import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from './infra/config.js';
import { startPostroom, type Postroom } from './main.js';
import { testLogger, testNamespace, waitFor, deleteTestTopology } from './test/broker.js';
import { createTestDatabase, type TestDatabase } from './test/db.js';
import { TEST_AMQP_URL } from './test/env.js';
import { createTestVhost, freePort, spawnPostroom } from './test/process.js';
import { startTcpProxy, type TcpProxy } from './test/tcp-proxy.js';
import { postroomTopology } from './infra/broker/subscriptions.js';

describe('the Postroom process', () => {
  it('exits non-zero at start with one message naming every bad variable', async () => {
    const p = spawnPostroom({
      AMQP_URL: 'http://rabbit',
      HTTP_PORT: 'eighty',
      ROLES: 'api,mailer',
      IMAP_AFTER: 'trash',
    });
    expect(await p.exited).toBe(1);
    const out = p.output();
    expect(out).toContain('Invalid configuration');
    for (const name of ['AMQP_URL', 'HTTP_PORT', 'ROLES', 'IMAP_AFTER']) expect(out).toContain(name);
  });

  it('exits non-zero naming each problem when a role finds its own configuration wrong (HOOKS_FILE)', async () => {
    const vhost = await createTestVhost();
    const db = await createTestDatabase('hooksfile');
    const file = join(tmpdir(), `hooks-${randomBytes(4).toString('hex')}.json`);
    await writeFile(
      file,
      JSON.stringify([
        { name: 'crm', url: 'file:///etc/passwd', events: ['email.processed', 'no.such.event'] },
      ]),
    );
    try {
      const p = spawnPostroom({
        AMQP_URL: vhost.url,
        MYSQL_URL: db.url,
        HTTP_PORT: String(await freePort()),
        ROLES: 'outbound',
        HOOKS_FILE: file,
      });
      expect(await p.exited).toBe(1);
      expect(p.output()).toMatch(/HOOKS_FILE\[0\]\.url/);
      expect(p.output()).toMatch(/HOOKS_FILE\[0\]\.events/);
    } finally {
      await rm(file, { force: true });
      await db.drop();
      await vhost.drop();
    }
  });

  it('stops cleanly with exit code 0 on SIGTERM', async () => {
    const vhost = await createTestVhost();
    const db = await createTestDatabase('sigterm');
    let p: ReturnType<typeof spawnPostroom> | undefined;
    try {
      const port = await freePort();
      p = spawnPostroom({
        AMQP_URL: vhost.url,
        MYSQL_URL: db.url,
        HTTP_PORT: String(port),
        ROLES: 'analysis,drive,api',
        LOG_LEVEL: 'info',
        STORAGE_DIR: `.tmp/sigterm-${port}`,
      });
      await waitFor(
        async () => {
          const r = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null);
          return r?.status === 200;
        },
        30_000,
        'ready',
      );
      // The built process finds the console's templates and static files next to its code.
      const base = `http://127.0.0.1:${port}`;
      const root = await fetch(`${base}/`, { redirect: 'manual' });
      expect([root.status, root.headers.get('location')]).toEqual([302, '/console']);
      const signIn = await fetch(`${base}/console/sign-in`);
      expect(signIn.status).toBe(200);
      expect(await signIn.text()).toContain('type="password"');
      const css = await fetch(`${base}/console/static/console.css`);
      expect([css.status, css.headers.get('content-type')]).toEqual([200, 'text/css; charset=utf-8']);
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
      expect(p.output()).toContain('"msg":"stopped"');
    } finally {
      // A failed assertion must not leave the process running.
      if (p && p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
      await db.drop();
      await vhost.drop();
    }
  });

  describe('/readyz follows the broker and the database', () => {
    let t: TestDatabase;
    let proxy: TcpProxy;
    let mysqlProxy: TcpProxy;
    let app: Postroom;
    const namespace = testNamespace('readyz');

    beforeAll(async () => {
      t = await createTestDatabase('readyz');
      const u = new URL(TEST_AMQP_URL);
      proxy = await startTcpProxy(u.hostname, Number(u.port || 5672));
      u.host = `127.0.0.1:${proxy.port}`;
      const m = new URL(t.url);
      mysqlProxy = await startTcpProxy(m.hostname, Number(m.port || 3306));
      m.host = `127.0.0.1:${mysqlProxy.port}`;
      const config = loadConfig({
        AMQP_URL: u.toString(),
        MYSQL_URL: m.toString(),
        ROLES: 'api',
        HTTP_PORT: '0',
      });
      app = await startPostroom(config, { log: testLogger(), namespace, httpPort: 0 });
      await app.broker.waitConnected();
    });
    afterAll(async () => {
      await app?.stop();
      await proxy?.close();
      await mysqlProxy?.close();
      await deleteTestTopology(postroomTopology({ namespace }));
      await t?.drop();
    });

    const readyz = async () => {
      const r = await fetch(`http://127.0.0.1:${app.port}/readyz`);
      return { status: r.status, body: (await r.json()) as { checks: Record<string, { ok: boolean }> } };
    };

    it.each([
      { away: 'rabbitmq', stays: 'mysql', cut: () => proxy },
      { away: 'mysql', stays: 'rabbitmq', cut: () => mysqlProxy },
    ])('answers 503 while $away is away and 200 again when it is back', async ({ away, stays, cut }) => {
      expect((await readyz()).status).toBe(200);
      cut().pause();
      const down = await waitFor(
        async () => {
          const r = await readyz();
          return r.status === 503 ? r : null;
        },
        10_000,
        '503',
      );
      expect(down.body.checks[away]?.ok).toBe(false);
      expect(down.body.checks[stays]?.ok).toBe(true);
      cut().resume();
      await waitFor(async () => (await readyz()).status === 200, 20_000, '200 again');
    });

    it('serves liveness, metrics, the OpenAPI document and the docs page', async () => {
      const base = `http://127.0.0.1:${app.port}`;
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toContain('postroom_broker_connected');
      expect(metrics).toContain('postroom_process_resident_memory_bytes');
      const doc = (await (await fetch(`${base}/openapi.json`)).json()) as {
        openapi: string;
        paths: Record<string, unknown>;
      };
      expect(doc.openapi).toMatch(/^3\.1/);
      expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/healthz', '/readyz', '/metrics']));
      const docs = await fetch(`${base}/docs/`);
      expect(docs.status).toBe(200);
      expect(await docs.text()).toContain('swagger-ui');
      const missing = await fetch(`${base}/nope`);
      expect(missing.status).toBe(404);
      expect(await missing.json()).toEqual({ error: { code: 'NOT_FOUND', message: 'No route GET /nope' } });
    });
  });
});
