import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../infra/config.js';
import { createDriveFileStore, type DriveFileStore } from '../../infra/drive/drive-client.js';
import { testLogger } from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { FakeDrive, FOLDER_MIME, guardEgress, type FakeDriveFile } from '../../test/fake-drive.js';
import { BACKUP_PROPERTY, createBackupRunner } from './backup.handler.js';
import type { JobResult } from './jobs.handler.js';
import { TEST_AMQP_URL } from '../../test/env.js';

const BACKUP_NAME = /^postroom-\d{8}T\d{6}Z\.tar\.gz$/;

describe('the backup job', () => {
  let t: TestDatabase;
  let fake: FakeDrive;
  let store: DriveFileStore;
  let dir: string;
  let folder: FakeDriveFile;
  let egress: ReturnType<typeof guardEgress>;
  /** The archives' clock: an hour further at each backup, so every run names its archive anew. */
  let clock = Date.parse('2026-12-01T02:30:00Z');
  let runs = 0;

  beforeAll(async () => {
    egress = guardEgress();
    t = await createTestDatabase('backupjob');
    fake = await FakeDrive.start();
    const config = loadConfig({
      AMQP_URL: TEST_AMQP_URL,
      MYSQL_URL: t.url,
      DRIVE_ACCESS_TOKEN: 'fake-drive-token',
      DRIVE_API_URL: fake.url,
    });
    store = await createDriveFileStore({ config, db: t.db });
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postroom-backup-job-'));
    folder = fake.seed({ name: 'postroom-backups', parents: ['root'], mimeType: FOLDER_MIME });
  });
  afterEach(async () => {
    fake.clearFaults();
    await rm(dir, { recursive: true, force: true });
  });
  afterAll(async () => {
    await fake?.close();
    await t?.drop();
    egress?.dispose();
  });

  const runner = (keep: number) =>
    createBackupRunner({
      mysqlUrl: t.url,
      dir,
      keep,
      drive: { store, folderId: folder.id },
      now: () => new Date((clock += 3_600_000)),
    });
  const run = (keep: number, runId = `0192f6a0-0000-7000-8000-${String(++runs).padStart(12, '0')}`) =>
    runner(keep)({
      def: {
        name: 'nightly',
        kind: 'backup',
        schedule: '30 2 * * *',
        timezone: 'UTC',
        misfire: 'skip',
        poll: null,
      },
      runId,
      dueAt: null,
      startedAt: new Date(),
      db: t.db,
      log: testLogger(),
      event: (() => undefined) as never,
    });
  const localBackups = async () => (await readdir(dir)).filter((n) => BACKUP_NAME.test(n)).sort();
  /** Postroom's backups in the folder, by name. */
  const driveBackups = () =>
    fake
      .filesIn(folder.id)
      .filter((f) => f.appProperties[BACKUP_PROPERTY] === '1')
      .map((f) => f.name)
      .sort();
  const uploads = () => fake.requestsTo('POST', '/upload/drive/v3/files').length;

  it('after BACKUP_KEEP + 2 runs, the newest BACKUP_KEEP are in the Drive folder and in BACKUP_DIR, nothing else touched', async () => {
    // What is not Postroom's: a person's file, one with a backup's name, and a local note.
    const notes = fake.seed({ name: 'notes.txt', parents: [folder.id], content: Buffer.from('mine') });
    const lookalike = fake.seed({
      name: 'postroom-20200101T000000Z.tar.gz',
      parents: [folder.id],
      content: Buffer.from('a backup made by hand'),
    });
    await writeFile(join(dir, 'notes.txt'), 'not a backup');

    const results: JobResult[] = [];
    for (let i = 0; i < 4; i++) results.push(await run(2));

    const local = await localBackups();
    expect(local).toHaveLength(2);
    expect(driveBackups()).toEqual(local);
    for (const f of fake.filesIn(folder.id).filter((x) => x.appProperties[BACKUP_PROPERTY] === '1'))
      expect(fake.content(f.id).equals(await readFile(join(dir, f.name)))).toBe(true);
    expect(fake.file(notes.id)?.name).toBe('notes.txt');
    expect(fake.file(lookalike.id)?.content?.toString()).toBe('a backup made by hand');
    expect((await readdir(dir)).sort()).toEqual(['notes.txt', ...local].sort());
    expect(uploads()).toBe(4);
    expect(results[0]?.detail).toMatch(/uploaded to Drive as \S+$/);
    expect(results[3]?.detail).toMatch(
      /uploaded to Drive as \S+; deleted 1 older on Drive; deleted 1 older locally$/,
    );
    expect(egress.blocked).toEqual([]);
  });

  it('a run cut off between the upload and the deletions, tried again, makes no second backup and deletes the rest', async () => {
    await run(1);
    const before = uploads();
    // Deleting fails: the run ends after its upload, with two backups in the folder.
    fake.failNext({
      method: 'DELETE',
      path: /^\/drive\/v3\/files\/[^/]+$/,
      status: 403,
      reason: 'insufficientFilePermissions',
    });
    const runId = '0192f6a0-0000-7000-8000-00000000c0de';
    const cut = await run(1, runId);
    expect(cut.outcome).toBe('failed');
    expect(cut.detail).toMatch(/; uploaded to Drive as \S+; .*Drive failed: DRIVE\.FORBIDDEN: /);
    expect(driveBackups()).toHaveLength(2);
    const newest = driveBackups()[1];
    expect(uploads()).toBe(before + 1);

    // The same run again: its archive is found on Drive, so no dump and no upload; the older copy goes.
    const again = await run(1, runId);
    expect(again.detail).toContain('made by an earlier attempt of this run');
    expect(uploads()).toBe(before + 1);
    expect(driveBackups()).toEqual([newest]);
    expect(await localBackups()).toEqual([newest]);
  });

  it('Drive down costs no local backup; what Drive missed is uploaded by the next run, if still among the newest', async () => {
    // Drive answers nothing for the whole run: the listing, then the upload.
    fake.failNext({ path: /^\/(upload\/)?drive\/v3\/files/, status: 403, reason: 'forbidden', times: 10 });
    const down = await run(3);
    expect(down.outcome).toBe('failed');
    expect(down.detail).toMatch(/^postroom-\S+: \d+ bytes, .*; Drive failed: DRIVE\.FORBIDDEN: /);
    const [missed] = await localBackups();
    expect(missed).toBeDefined();
    expect(driveBackups()).toEqual([]);
    fake.clearFaults();

    const next = await run(3);
    expect(driveBackups()).toEqual(await localBackups());
    expect(driveBackups()).toHaveLength(2);
    expect(driveBackups()[0]).toBe(missed);
    expect(next.detail).toContain('uploaded 1 older backup Drive lacked');
  });
});
