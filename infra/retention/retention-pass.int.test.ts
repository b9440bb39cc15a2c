import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostroom, type Postroom } from '../../main.js';
import { deleteTestTopology, testLogger, testNamespace } from '../../test/broker.js';
import { blobRowCounts, createTestDatabase, type TestDatabase } from '../../test/db.js';
import { FakeDrive, guardEgress } from '../../test/fake-drive.js';
import { pdf, png, windowsExe } from '../../test/file-fixtures.js';
import { recordTestEmail, waitForDone } from '../../test/recorded-mail.js';
import { createMysqlBlobStore } from '../blobs/mysql-blob-store.js';
import { postroomTopology } from '../broker/subscriptions.js';
import { loadConfig, type Config } from '../config.js';
import { lazyFileStore } from '../drive/drive-client.js';
import { startStatusApi } from '../http/status-api/index.js';
import { runRetentionPass } from './retention-pass.js';
import { TEST_AMQP_URL } from '../../test/env.js';

const log = testLogger();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const DAY = 86_400_000;

function spread(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff;
  return b;
}

/**
 * Retention with Drive (the fake, through the real @googleapis/drive client) as the archive: the pass
 * drops only what may go, and the API then serves the bytes from Drive.
 */
describe('retention pass with Drive as the archive', () => {
  const namespace = testNamespace('retention');
  let t: TestDatabase;
  let fake: FakeDrive;
  let egress: ReturnType<typeof guardEgress>;
  let app: Postroom;
  let config: Config;
  let base: string;
  const files = { invoice: pdf('Invoice 9'), big: spread(2 * 1024 * 1024 + 77, 1), exe: windowsExe() };
  let photo: Buffer;
  let old: Awaited<ReturnType<typeof recordTestEmail>>;
  let young: Awaited<ReturnType<typeof recordTestEmail>>;

  beforeAll(async () => {
    egress = guardEgress();
    fake = await FakeDrive.start();
    t = await createTestDatabase('retention');
    config = loadConfig({
      AMQP_URL: TEST_AMQP_URL,
      ROLES: 'analysis,drive,api',
      MYSQL_URL: t.url,
      DRIVE_ACCESS_TOKEN: 'fake-drive-token',
      DRIVE_API_URL: fake.url,
      API_TOKENS: 't1',
      API_RATE_LIMIT_PER_MINUTE: '100000',
      RETENTION_DAYS: '30',
      LOG_LEVEL: 'silent',
    });
    app = await startPostroom(config, {
      log,
      namespace,
      httpPort: 0,
      starters: { api: (ctx) => startStatusApi(ctx) },
      retryDelaysMs: [100, 200],
    });
    await app.broker.waitConnected();
    base = `http://127.0.0.1:${app.port}`;
    photo = await png(120, 80);
    const blobs = createMysqlBlobStore(t.db);
    old = await recordTestEmail(t.db, blobs, {
      files: [
        { name: 'invoice.pdf', type: 'application/pdf', bytes: files.invoice },
        { name: 'big.bin', type: 'application/octet-stream', bytes: files.big },
        { name: 'photo.png', type: 'image/png', bytes: photo },
        { name: 'report.pdf', type: 'application/pdf', bytes: files.exe },
      ],
    });
    await waitForDone(t.db, old.emailId);
    // The young email holds the photo's bytes too (shared blob), in another folder.
    young = await recordTestEmail(t.db, blobs, {
      from: 'bo@example.com',
      files: [{ name: 'same-photo.png', type: 'image/png', bytes: photo }],
    });
    await waitForDone(t.db, young.emailId);
    // Age the first email's attachments past the limit (the pass reads the recorded time).
    await t.db
      .updateTable('attachments')
      .set({ created_at: sql`created_at - interval 40 day` })
      .where('email_id', '=', old.emailId)
      .execute();
  });
  afterAll(async () => {
    await app?.stop();
    await deleteTestTopology(postroomTopology({ namespace, retryDelaysMs: [100, 200] }));
    await t?.drop();
    await fake?.close();
    expect(egress.blocked).toEqual([]);
    egress?.dispose();
  });

  const idOf = (name: string) =>
    old.attachments.find((a) => a.filename === name)?.id ??
    young.attachments.find((a) => a.filename === name)!.id;
  const hasBlob = async (b: Buffer) =>
    Boolean(await t.db.selectFrom('blobs').select('sha256').where('sha256', '=', sha(b)).executeTakeFirst());
  const download = async (id: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${base}/api/v1/attachments/${id}/content`, {
      headers: { authorization: 'Bearer t1', ...headers },
    });
    return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
  };

  it('drops nothing while RETENTION_DAYS is 0 or nothing is old enough', async () => {
    expect(await runRetentionPass({ db: t.db, log, retentionDays: 0 })).toEqual({
      dropped: 0,
      bytesFreed: 0,
    });
    expect(
      await runRetentionPass({ db: t.db, log, retentionDays: 30, now: new Date(Date.now() - 20 * DAY) }),
    ).toEqual({ dropped: 0, bytesFreed: 0 });
  });

  it('drops the bytes of filed old attachments only, in two passes at once, and keeps thumbnails', async () => {
    const thumb = await t.db
      .selectFrom('attachments')
      .select('thumbnail_sha256')
      .where('id', '=', idOf('photo.png'))
      .executeTakeFirstOrThrow();
    expect(thumb.thumbnail_sha256).not.toBeNull();
    const before = await blobRowCounts(t.db);
    const deps = { db: t.db, log, retentionDays: 30, files: lazyFileStore({ config, db: t.db, log }) };
    const [a, b] = await Promise.all([runRetentionPass(deps), runRetentionPass(deps)]);
    // Each blob dropped once between the two passes: the invoice and the big file.
    expect(a.dropped + b.dropped).toBe(2);
    expect(a.bytesFreed + b.bytesFreed).toBe(files.invoice.length + files.big.length);
    expect(await hasBlob(files.invoice)).toBe(false);
    expect(await hasBlob(files.big)).toBe(false);
    // Quarantined bytes stay; the photo is shared with a young attachment; its thumbnail stays.
    expect(await hasBlob(files.exe)).toBe(true);
    expect(await hasBlob(photo)).toBe(true);
    expect(
      await t.db
        .selectFrom('blobs')
        .select('sha256')
        .where('sha256', '=', thumb.thumbnail_sha256!)
        .executeTakeFirst(),
    ).toBeDefined();
    const after = await blobRowCounts(t.db);
    expect(before.blobs - after.blobs).toBe(2);
    expect(before.chunks - after.chunks).toBe(1 + 3); // one chunk of the invoice, three of the big file
    // A third pass finds nothing left to do.
    expect(await runRetentionPass(deps)).toEqual({ dropped: 0, bytesFreed: 0 });
  });

  it('serves dropped bytes from Drive byte for byte (whole and a range), checked against the SHA-256', async () => {
    const downloadsBefore = fake.requests.filter((r) => r.query['alt'] === 'media').length;
    const whole = await download(idOf('big.bin'));
    expect(whole.status).toBe(200);
    expect(whole.headers.get('x-content-origin')).toBe('filed');
    expect(sha(whole.body)).toBe(sha(files.big));
    const start = 1024 * 1024 - 10;
    const part = await download(idOf('big.bin'), { range: `bytes=${start}-${start + 19}` });
    expect(part.status).toBe(206);
    expect(part.body.equals(files.big.subarray(start, start + 20))).toBe(true);
    const invoice = await download(idOf('invoice.pdf'));
    expect(invoice.body.equals(files.invoice)).toBe(true);
    expect(invoice.headers.get('content-type')).toBe('application/pdf');
    // Those bytes really came from Drive's alt=media.
    expect(fake.requests.filter((r) => r.query['alt'] === 'media').length - downloadsBefore).toBe(3);
    // Bytes still in MySQL are served from there.
    expect((await download(idOf('photo.png'))).headers.get('x-content-origin')).toBe('mysql');
  });

  it('cuts a download short when the Drive copy was edited, and answers 410 when it was deleted', async () => {
    const row = await t.db
      .selectFrom('attachments')
      .select(['drive_file_id'])
      .where('id', '=', idOf('invoice.pdf'))
      .executeTakeFirstOrThrow();
    fake.updateContent(row.drive_file_id!, pdf('Edited by hand'));
    await expect(download(idOf('invoice.pdf'))).rejects.toThrow();
    fake.remove(row.drive_file_id!);
    const gone = await download(idOf('invoice.pdf'));
    expect(gone.status).toBe(410);
    expect(JSON.parse(gone.body.toString('utf8')).error.code).toBe('CONTENT.GONE');
  });

  it('keeps the bytes whose filed copy is gone', async () => {
    // Make the photo droppable (the young copy ages too), then delete its Drive copy by hand.
    await t.db
      .updateTable('attachments')
      .set({ created_at: sql`created_at - interval 40 day` })
      .where('email_id', '=', young.emailId)
      .execute();
    const rows = await t.db
      .selectFrom('attachments')
      .select('drive_file_id')
      .where('sha256', '=', sha(photo))
      .execute();
    for (const r of rows) if (r.drive_file_id && fake.file(r.drive_file_id)) fake.remove(r.drive_file_id);
    const deps = { db: t.db, log, retentionDays: 30, files: lazyFileStore({ config, db: t.db, log }) };
    expect(await runRetentionPass(deps)).toEqual({ dropped: 0, bytesFreed: 0 });
    expect(await hasBlob(photo)).toBe(true);
  });
});
