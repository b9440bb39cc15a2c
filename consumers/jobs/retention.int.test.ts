import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMysqlBlobStore } from '../../infra/blobs/mysql-blob-store.js';
import { postroomTopology } from '../../infra/broker/subscriptions.js';
import { loadConfig } from '../../infra/config.js';
import { startPostroom, type Postroom } from '../../main.js';
import { deleteTestTopology, testLogger, testNamespace, waitFor } from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { FakeDrive, guardEgress } from '../../test/fake-drive.js';
import { pdf } from '../../test/file-fixtures.js';
import { recordTestEmail, waitForDone } from '../../test/recorded-mail.js';
import { createRetentionRunner } from './retention.handler.js';
import { TEST_AMQP_URL } from '../../test/env.js';

const TOKEN = 'retention-job-token-0123456789ab';
const log = testLogger();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The `retention` kind of SCHEDULES_FILE, run by hand through the API on a running Postroom. */
describe('the retention job', () => {
  const namespace = testNamespace('retjob');
  let t: TestDatabase;
  let fake: FakeDrive;
  let egress: ReturnType<typeof guardEgress>;
  let dir: string;
  let app: Postroom;
  const oldPdf = pdf('Old invoice 41');
  const youngPdf = pdf('Young invoice 42');

  beforeAll(async () => {
    egress = guardEgress();
    fake = await FakeDrive.start();
    t = await createTestDatabase('retjob');
    dir = await mkdtemp(join(tmpdir(), 'postroom-retention-job-'));
    const schedules = join(dir, 'schedules.json');
    await writeFile(
      schedules,
      // Once a year: the test runs it by hand.
      JSON.stringify([{ name: 'retention', kind: 'retention', schedule: '0 3 1 1 *' }]),
    );
    app = await startPostroom(
      loadConfig({
        AMQP_URL: TEST_AMQP_URL,
        ROLES: 'analysis,drive,api,scheduler',
        MYSQL_URL: t.url,
        DRIVE_ACCESS_TOKEN: 'fake-drive-token',
        DRIVE_API_URL: fake.url,
        SCHEDULES_FILE: schedules,
        RETENTION_DAYS: '30',
        API_TOKENS: TOKEN,
        BACKUP_DIR: join(dir, 'backups'),
        LOG_LEVEL: 'silent',
      }),
      { log, namespace, httpPort: 0, retryDelaysMs: [100, 200] },
    );
    await app.broker.waitConnected();
  });
  afterAll(async () => {
    await app?.stop();
    await deleteTestTopology(postroomTopology({ namespace, retryDelaysMs: [100, 200] }));
    await t?.drop();
    await fake?.close();
    await rm(dir, { recursive: true, force: true });
    expect(egress.blocked).toEqual([]);
    egress?.dispose();
  });

  const hasBlob = async (b: Buffer) =>
    Boolean(await t.db.selectFrom('blobs').select('sha256').where('sha256', '=', sha(b)).executeTakeFirst());
  const api = (method: string, path: string) =>
    fetch(`http://127.0.0.1:${app.port}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}` },
    });

  it('drops the MySQL bytes of an old filed attachment, keeps a young one, and records what it did', async () => {
    const blobs = createMysqlBlobStore(t.db);
    const old = await recordTestEmail(t.db, blobs, {
      files: [{ name: 'old.pdf', type: 'application/pdf', bytes: oldPdf }],
    });
    const young = await recordTestEmail(t.db, blobs, {
      files: [{ name: 'young.pdf', type: 'application/pdf', bytes: youngPdf }],
    });
    await waitForDone(t.db, old.emailId);
    await waitForDone(t.db, young.emailId);
    await t.db
      .updateTable('attachments')
      .set({ created_at: sql`created_at - interval 40 day` })
      .where('email_id', '=', old.emailId)
      .execute();
    expect(await hasBlob(oldPdf)).toBe(true);

    const res = await api('POST', '/jobs/retention/run');
    expect(res.status).toBe(202);
    const { runId } = (await res.json()) as { runId: string };
    const run = await waitFor(
      async () => {
        const r = await t.db.selectFrom('job_runs').selectAll().where('id', '=', runId).executeTakeFirst();
        return r && (r.status === 'succeeded' || r.status === 'failed') ? r : null;
      },
      15_000,
      'retention run finished',
    );
    expect(run.status).toBe('succeeded');
    expect(run.detail).toBe(
      `dropped 1 blob, ${oldPdf.length} bytes freed (attachments filed more than 30 days ago)`,
    );
    expect(await hasBlob(oldPdf)).toBe(false);
    expect(await hasBlob(youngPdf)).toBe(true);

    // The API lists the run, and the old attachment is now served from its filed copy.
    const jobs = (await (await api('GET', '/jobs')).json()) as {
      items: { name: string; kind: string; lastRuns: { id: string; detail: string }[] }[];
    };
    expect(jobs.items[0]).toMatchObject({ name: 'retention', kind: 'retention' });
    expect(jobs.items[0]!.lastRuns[0]).toMatchObject({ id: runId, detail: run.detail });
    const content = await api('GET', `/attachments/${old.attachments[0]!.id}/content`);
    expect(content.status).toBe(200);
    expect(content.headers.get('x-content-origin')).toBe('filed');
    expect(Buffer.from(await content.arrayBuffer()).equals(oldPdf)).toBe(true);
  });

  it('succeeds without touching anything when RETENTION_DAYS is 0', async () => {
    let opened = 0;
    const run = createRetentionRunner({
      retentionDays: 0,
      files: () => {
        opened++;
        return Promise.reject(new Error('not to be opened'));
      },
    });
    const result = await run({
      def: {
        name: 'r',
        kind: 'retention',
        schedule: '0 3 * * *',
        timezone: 'UTC',
        misfire: 'skip',
        poll: null,
      },
      runId: '0192f6a0-0000-7000-8000-0000000000c1',
      dueAt: null,
      startedAt: new Date(),
      db: t.db,
      log,
      event: (() => undefined) as never,
    });
    expect(result).toEqual({
      detail: 'retention is off (RETENTION_DAYS is 0): attachment bytes are kept forever',
    });
    expect(opened).toBe(0);
    expect(await hasBlob(youngPdf)).toBe(true);
  });
});
