import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postroomTopology } from '../../infra/broker/subscriptions.js';
import { loadConfig } from '../../infra/config.js';
import { documentValidator, type DocumentValidator } from '../../infra/http/status-api/openapi-check.js';
import { startPostroom, type Postroom } from '../../main.js';
import { deleteTestTopology, testLogger, testNamespace, waitFor } from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { startHookTarget, type HookTarget } from '../../test/hook-target.js';
import { TEST_AMQP_URL } from '../../test/env.js';

const TOKEN = 'jobs-test-token-0123456789abcdef';

describe('poll an API, call another when the answer changes: configuration only', () => {
  let t: TestDatabase;
  let api: HookTarget;
  let hook: HookTarget;
  let dir: string;
  let app: Postroom;
  let doc: DocumentValidator;
  const namespace = testNamespace('jobs');

  beforeAll(async () => {
    t = await createTestDatabase('jobs');
    api = await startHookTarget();
    hook = await startHookTarget();
    dir = await mkdtemp(join(tmpdir(), 'postroom-jobs-'));
    const schedules = join(dir, 'schedules.json');
    const hooks = join(dir, 'hooks.json');
    await writeFile(
      schedules,
      JSON.stringify([
        {
          name: 'rates',
          kind: 'poll',
          schedule: '0 0 1 1 *', // once a year: the test runs it by hand
          url: `${api.url}/rates?key=secret-key`,
          headers: { 'X-Api-Key': 'k-123' },
          timeoutMs: 2000,
          retries: 1,
        },
      ]),
    );
    await writeFile(
      hooks,
      JSON.stringify([
        { name: 'on-change', url: `${hook.url}/changed`, events: ['api.polled'], when: { changed: true } },
      ]),
    );
    app = await startPostroom(
      loadConfig({
        AMQP_URL: TEST_AMQP_URL,
        ROLES: 'api,scheduler,outbound',
        MYSQL_URL: t.url,
        SCHEDULES_FILE: schedules,
        HOOKS_FILE: hooks,
        OUTBOUND_ALLOW_HOSTS: '127.0.0.1',
        API_TOKENS: TOKEN,
        BACKUP_DIR: join(dir, 'backups'),
        LOG_LEVEL: 'silent',
      }),
      { log: testLogger(), namespace, httpPort: 0, retryDelaysMs: [100, 200] },
    );
    doc = documentValidator(
      (await (await fetch(`http://127.0.0.1:${app.port}/openapi.json`)).json()) as Record<string, unknown>,
    );
  });
  afterAll(async () => {
    await app?.stop();
    await deleteTestTopology(postroomTopology({ namespace }));
    await api?.close();
    await hook?.close();
    await t?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  const call = async (method: string, path: string) => {
    const res = await fetch(`http://127.0.0.1:${app.port}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const runNow = async () => {
    const res = await call('POST', '/jobs/rates/run');
    expect(res.status).toBe(202);
    doc.expectValid('/api/v1/jobs/{name}/run', 'post', 202, res.body);
    const runId = res.body['runId'] as string;
    return waitFor(
      async () => {
        const r = await t.db.selectFrom('job_runs').selectAll().where('id', '=', runId).executeTakeFirst();
        return r && (r.status === 'succeeded' || r.status === 'failed') ? r : null;
      },
      15_000,
      'run finished',
    );
  };

  it('stores each answer and calls the hook only when the body changed', async () => {
    api.reply(
      { status: 200, headers: { 'content-type': 'application/json' }, body: '{"eur":1.10}' },
      { status: 200, headers: { 'content-type': 'application/json' }, body: '{"eur":1.10}' },
      { status: 503, body: 'busy' }, // retried once within the run
      { status: 200, headers: { 'content-type': 'application/json' }, body: '{"eur":1.12}' },
    );
    for (let i = 0; i < 3; i++) expect((await runNow()).status).toBe('succeeded');

    expect(api.requests.map((r) => r.path)).toEqual(Array(4).fill('/rates?key=secret-key'));
    expect(api.requests[0]?.headers['x-api-key']).toBe('k-123');
    const polls = await t.db.selectFrom('polls').selectAll().orderBy('polled_at').execute();
    expect(polls.map((p) => [p.status_code, p.content_type, p.changed])).toEqual([
      [200, 'application/json', 1],
      [200, 'application/json', 0],
      [200, 'application/json', 1],
    ]);
    const body = await app.database.db
      .selectFrom('blobs')
      .select('sha256')
      .where('sha256', '=', polls[2]!.body_sha256!)
      .executeTakeFirst();
    expect(body).toBeTruthy();

    // The hook is called for the first answer and the changed one, with the api.polled envelope.
    await waitFor(() => hook.requests.length >= 2, 15_000, 'two hook calls');
    await new Promise((r) => setTimeout(r, 500));
    expect(hook.requests).toHaveLength(2);
    const events = hook.requests.map(
      (r) => JSON.parse(r.body.toString()) as { type: string; data: Record<string, unknown> },
    );
    expect(events.map((e) => [e.type, e.data['changed'], e.data['previousSha256'] === null])).toEqual([
      ['api.polled', true, true],
      ['api.polled', true, false],
    ]);
    expect(events[1]?.data['url']).toBe(`${api.url}/rates`); // no query: it may hold keys
    expect(events[1]?.data['sha256']).toBe(polls[2]!.body_sha256);
  });

  it('answers 409 to a second run while one runs, and lists jobs with their runs', async () => {
    api.reply({ status: 200, body: 'slow', delayMs: 1500 });
    const first = await call('POST', '/jobs/rates/run');
    expect(first.status).toBe(202);
    const second = await call('POST', '/jobs/rates/run');
    expect(second.status).toBe(409);
    expect((second.body['error'] as { code: string }).code).toBe('JOB.RUNNING');
    expect((await call('POST', '/jobs/nope/run')).status).toBe(404);
    await waitFor(
      async () =>
        (
          await t.db
            .selectFrom('job_runs')
            .select('status')
            .where('id', '=', first.body['runId'] as string)
            .executeTakeFirst()
        )?.status === 'succeeded',
      15_000,
      'slow run done',
    );

    const list = await call('GET', '/jobs?runs=3');
    expect(list.status).toBe(200);
    doc.expectValid('/api/v1/jobs', 'get', 200, list.body);
    const [job] = list.body['items'] as {
      name: string;
      nextDueAt: string;
      running: boolean;
      lastRuns: { status: string; trigger: string; detail: string }[];
    }[];
    expect(job).toMatchObject({ name: 'rates', running: false });
    expect(job!.nextDueAt).toMatch(/-01-01T00:00:00.000Z$/);
    expect(job!.lastRuns).toHaveLength(3);
    expect(job!.lastRuns[0]).toMatchObject({ status: 'succeeded', trigger: 'manual' });
    expect(job!.lastRuns[0]!.detail).toContain('answered 200');

    const metrics = await (await fetch(`http://127.0.0.1:${app.port}/metrics`)).text();
    expect(metrics).toMatch(/postroom_job_runs_total\{job="rates",outcome="succeeded"\} [4-9]/);
    expect(metrics).toMatch(/postroom_job_seconds_since_last_success\{job="rates"\} \d+/);
    expect(metrics).toContain('postroom_job_duration_seconds_count{job="rates"}');
  });

  it('refuses a URL that resolves to a private address unless allow-listed, and records why', async () => {
    const { createPollRunner } = await import('./poll.handler.js');
    const run = createPollRunner({ blobs: {} as never, allowHosts: new Set() });
    await expect(
      run({
        def: {
          name: 'x',
          kind: 'poll',
          schedule: '* * * * *',
          timezone: 'UTC',
          misfire: 'skip',
          poll: { url: `${api.url}/rates`, method: 'GET', headers: {}, timeoutMs: 1000, retries: 0 },
        },
        runId: '0192f6a0-0000-7000-8000-0000000000b1',
        dueAt: null,
        startedAt: new Date(),
        db: t.db,
        log: testLogger(),
        event: (() => undefined) as never,
      }),
    ).rejects.toMatchObject({ code: 'OUTBOUND.BLOCKED' });
  });
});
