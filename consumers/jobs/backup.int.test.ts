import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../infra/config.js';
import { createFileStore } from '../../infra/drive/drive-client.js';
import { testLogger } from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { FakeDrive, FOLDER_MIME, guardEgress } from '../../test/fake-drive.js';
import { createBackupRunner } from './backup.handler.js';

describe('the backup job', () => {
  let t: TestDatabase;
  let fake: FakeDrive;
  let dir: string;
  let egress: ReturnType<typeof guardEgress>;

  beforeAll(async () => {
    egress = guardEgress();
    t = await createTestDatabase('backupjob');
    fake = await FakeDrive.start();
    dir = await mkdtemp(join(tmpdir(), 'postroom-backup-job-'));
  });
  afterAll(async () => {
    await fake?.close();
    await t?.drop();
    await rm(dir, { recursive: true, force: true });
    egress?.dispose();
  });

  it('writes a backup, uploads it to DRIVE_BACKUP_FOLDER_ID and keeps the newest BACKUP_KEEP locally', async () => {
    const folder = fake.seed({ name: 'postroom-backups', parents: ['root'], mimeType: FOLDER_MIME });
    for (const old of ['postroom-20250101T000000Z.tar.gz', 'postroom-20250102T000000Z.tar.gz'])
      await writeFile(join(dir, old), 'old');
    await writeFile(join(dir, 'notes.txt'), 'not a backup');
    const config = loadConfig({
      MYSQL_URL: t.url,
      DRIVE_ACCESS_TOKEN: 'fake-drive-token',
      DRIVE_API_URL: fake.url,
      DRIVE_BACKUP_FOLDER_ID: folder.id,
    });
    const store = await createFileStore({ config, db: t.db });
    const run = createBackupRunner({ mysqlUrl: t.url, dir, keep: 2, drive: { store, folderId: folder.id } });
    const result = await run({
      def: {
        name: 'nightly',
        kind: 'backup',
        schedule: '30 2 * * *',
        timezone: 'UTC',
        misfire: 'skip',
        poll: null,
      },
      runId: '0192f6a0-0000-7000-8000-0000000000b1',
      dueAt: null,
      startedAt: new Date(),
      db: t.db,
      log: testLogger(),
      event: (() => undefined) as never,
    });

    const names = (await readdir(dir)).sort();
    const fresh = names.filter(
      (n) => /^postroom-\d{8}T\d{6}Z\.tar\.gz$/.test(n) && !n.startsWith('postroom-2025'),
    );
    expect(fresh).toHaveLength(1);
    expect(names).toEqual(['notes.txt', 'postroom-20250102T000000Z.tar.gz', fresh[0]!].sort());
    const [uploaded] = fake.filesIn(folder.id);
    expect(uploaded?.name).toBe(fresh[0]);
    expect(fake.content(uploaded!.id).equals(await readFile(join(dir, fresh[0]!)))).toBe(true);
    expect(result.detail).toContain(`uploaded to Drive as ${uploaded!.id}`);
    expect(result.detail).toContain('deleted 1 older');
    expect(egress.blocked).toEqual([]);
  });
});
