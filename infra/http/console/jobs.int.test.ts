import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostroom, type Postroom } from '../../../main.js';
import { deleteTestTopology, testLogger, testNamespace } from '../../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../../test/db.js';
import { postroomTopology } from '../../broker/subscriptions.js';
import { loadConfig } from '../../config.js';
import { finishRun, recordRun, startRun, syncSchedules } from '../../db/repositories/jobs.repository.js';
import { TEST_AMQP_URL } from '../../../test/env.js';

const TOKEN = 'console-jobs-token-0123456789abcd';
const HOSTILE = '<img src=x onerror="alert(1)"> dropped 3 blobs';

/** Cookies of a response as one `Cookie` header, merged over earlier ones. */
function merge(jar: Map<string, string>, res: Response): void {
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const at = pair!.indexOf('=');
    jar.set(pair!.slice(0, at), pair!.slice(at + 1));
  }
}
const cookieOf = (jar: Map<string, string>) => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
const csrfIn = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1];

/**
 * The console's Jobs page without a browser: the API role alone (no scheduler consumes the runs, so a
 * run asked for stays queued and a second ask finds it busy).
 */
describe('console: jobs page', () => {
  const namespace = testNamespace('cjobs');
  let t: TestDatabase;
  let app: Postroom;
  let base: string;
  const jar = new Map<string, string>();

  beforeAll(async () => {
    t = await createTestDatabase('cjobs');
    app = await startPostroom(
      loadConfig({
        AMQP_URL: TEST_AMQP_URL,
        ROLES: 'api',
        MYSQL_URL: t.url,
        API_TOKENS: TOKEN,
        LOG_LEVEL: 'silent',
      }),
      { log: testLogger(), namespace, httpPort: 0 },
    );
    base = `http://127.0.0.1:${app.port}`;
    // Two jobs as a scheduler records them, one with a finished run whose detail is hostile.
    await syncSchedules(
      t.db,
      [
        { name: 'nightly-backup', kind: 'backup', schedule: '30 2 * * *', timezone: 'UTC', misfire: 'skip' },
        {
          name: 'retention',
          kind: 'retention',
          schedule: '0 3 * * *',
          timezone: 'Europe/Berlin',
          misfire: 'skip',
        },
      ],
      (job) => new Date(job.name === 'retention' ? '2030-01-02T02:00:00Z' : '2030-01-01T02:30:00Z'),
      new Date('2029-12-31T12:00:00Z'),
    );
    const ranAt = new Date('2029-12-31T01:02:03Z');
    const runId = await t.db
      .transaction()
      .execute((trx) =>
        recordRun(trx, { job: 'retention', kind: 'retention', dueAt: ranAt, trigger: 'schedule' }, ranAt),
      );
    await startRun(t.db, runId!, ranAt);
    await finishRun(t.db, runId!, 'succeeded', HOSTILE, new Date('2029-12-31T01:02:04Z'));

    // Sign in as a browser would: the form's token and its pre-session cookie, then the session cookie.
    const form = await fetch(`${base}/console/sign-in`);
    merge(jar, form);
    const signIn = await fetch(`${base}/console/sign-in`, {
      method: 'POST',
      headers: { cookie: cookieOf(jar) },
      body: new URLSearchParams({ _csrf: csrfIn(await form.text())!, token: TOKEN, next: '/console' }),
      redirect: 'manual',
    });
    expect(signIn.status).toBe(303);
    merge(jar, signIn);
  });
  afterAll(async () => {
    await app?.stop();
    await deleteTestTopology(postroomTopology({ namespace }));
    await t?.drop();
  });

  const get = async (path: string) => {
    const res = await fetch(`${base}${path}`, { headers: { cookie: cookieOf(jar) }, redirect: 'manual' });
    return { status: res.status, html: await res.text() };
  };
  const runNow = (job: string, csrf: string | undefined) =>
    fetch(`${base}/console/jobs/${job}/run`, {
      method: 'POST',
      headers: { cookie: cookieOf(jar) },
      body: new URLSearchParams(csrf === undefined ? {} : { _csrf: csrf }),
      redirect: 'manual',
    });
  const queuedRuns = async (job: string) =>
    (
      await t.db
        .selectFrom('job_runs')
        .select('id')
        .where('job', '=', job)
        .where('status', '=', 'queued')
        .execute()
    ).length;

  it('lists each job with schedule, time zone, next due time and its last runs, details as text', async () => {
    const page = await get('/console/jobs');
    expect(page.status).toBe(200);
    expect(page.html).toContain('<a href="/console/jobs" aria-current="page">Jobs</a>');
    expect(page.html).toContain('nightly-backup');
    expect(page.html).toContain('<code>0 3 * * *</code> · Europe/Berlin');
    expect(page.html).toContain('2030-01-02 02:00:00 UTC'); // the next due time, absolute
    expect(page.html).toContain('2029-12-31 01:02:04 UTC'); // when the run finished
    expect(page.html).toContain('badge-succeeded');
    expect(page.html).toContain('Never run.'); // the backup job
    // The hostile detail is text, never markup.
    expect(page.html).toContain('&#60;img src=x onerror=&#34;alert(1)&#34;&#62; dropped 3 blobs');
    expect(page.html).not.toContain('<img src=x');
    expect(page.html).toContain('action="/console/jobs/retention/run"');
  });

  it('refuses Run now without the form token, queues one with it, and says "already running" the second time', async () => {
    const noToken = await runNow('retention', undefined);
    expect(noToken.status).toBe(403);
    expect(await noToken.text()).toContain('This form was refused');
    const wrongToken = await runNow('retention', 'x'.repeat(43));
    expect(wrongToken.status).toBe(403);
    expect(await queuedRuns('retention')).toBe(0);

    const csrf = csrfIn((await get('/console/jobs')).html)!;
    const first = await runNow('retention', csrf);
    expect(first.status).toBe(303);
    expect(first.headers.get('location')).toBe('/console/jobs?queued=retention');
    expect(await queuedRuns('retention')).toBe(1);
    const after = await get(first.headers.get('location')!);
    expect(after.html).toContain('Job retention was queued');
    expect(after.html).toContain('badge-queued');

    const second = await runNow('retention', csrf);
    expect(second.headers.get('location')).toBe('/console/jobs?busy=retention');
    expect((await get(second.headers.get('location')!)).html).toContain(
      'Job retention is already running (or queued)',
    );
    expect(await queuedRuns('retention')).toBe(1);

    const unknown = await runNow('nope', csrf);
    expect(unknown.headers.get('location')).toBe('/console/jobs?unknown=nope');
    expect((await get('/console/jobs?unknown=nope')).html).toContain(
      'There is no job nope in SCHEDULES_FILE',
    );
  });

  it('shows the page only to a signed-in session', async () => {
    const res = await fetch(`${base}/console/jobs`, { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toContain('/console/sign-in');
  });
});
