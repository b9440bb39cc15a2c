import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMysqlBlobStore } from '../../infra/blobs/mysql-blob-store.js';
import { postroomTopology } from '../../infra/broker/subscriptions.js';
import { loadConfig } from '../../infra/config.js';
import { createDriveAuth } from '../../infra/drive/drive-auth.js';
import { startPostroom, type Postroom } from '../../main.js';
import { deleteTestTopology, testLogger, testNamespace, waitFor } from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { FakeDrive, FOLDER_MIME, guardEgress, type FakeDriveFile } from '../../test/fake-drive.js';
import { pdf, png } from '../../test/file-fixtures.js';
import { waitForDone } from '../../test/recorded-mail.js';
import { DriveIntakeApi } from './drive-intake-api.js';
import { createDriveIntake, type DriveIntake } from './drive-intake.js';
import { TEST_AMQP_URL } from '../../test/env.js';

const log = testLogger();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const MAX = 200_000;

/** Files dropped into an intake folder of the fake Drive, read through the real client, filed by the real consumers. */
describe('Drive intake', () => {
  const namespace = testNamespace('intake');
  let t: TestDatabase;
  let fake: FakeDrive;
  let egress: ReturnType<typeof guardEgress>;
  let app: Postroom;
  let folder: FakeDriveFile;
  let loopFolder: FakeDriveFile;
  let before: FakeDriveFile;
  const beforeBytes = pdf('Dropped before the first poll');

  const newIntake = async (): Promise<DriveIntake> =>
    createDriveIntake({
      db: t.db,
      blobs: createMysqlBlobStore(t.db),
      api: new DriveIntakeApi({
        auth: await createDriveAuth({ driveMode: 'access-token', DRIVE_ACCESS_TOKEN: 'fake-drive-token' }),
        rootUrl: fake.url,
        retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 50 },
      }),
      folderId: folder.id,
      maxBytes: MAX,
      log,
    });
  /** The email of an intake file (whatever its version: the fake's objects change as Drive's do). */
  const emailOf = (file: { id: string }) =>
    t.db
      .selectFrom('emails')
      .selectAll()
      .where('message_id', 'like', `drive-${file.id}-v%@drive.postroom`)
      .executeTakeFirst();
  const attachmentsOf = (emailId: string) =>
    t.db.selectFrom('attachments').selectAll().where('email_id', '=', emailId).execute();
  const emailCount = async () =>
    Number(
      (
        await t.db
          .selectFrom('emails')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  beforeAll(async () => {
    egress = guardEgress();
    fake = await FakeDrive.start();
    folder = fake.seed({ name: 'Intake', mimeType: FOLDER_MIME, parents: ['root'] });
    loopFolder = fake.seed({ name: 'Intake (loop)', mimeType: FOLDER_MIME, parents: ['root'] });
    before = fake.seed({
      name: 'before.pdf',
      mimeType: 'application/pdf',
      parents: [folder.id],
      content: beforeBytes,
    });
    t = await createTestDatabase('intake');
    app = await startPostroom(
      loadConfig({
        AMQP_URL: TEST_AMQP_URL,
        ROLES: 'analysis,drive',
        MYSQL_URL: t.url,
        DRIVE_ACCESS_TOKEN: 'fake-drive-token',
        DRIVE_API_URL: fake.url,
        ATTACHMENT_MAX_BYTES: String(MAX),
        DRIVE_INTAKE_FOLDER_ID: loopFolder.id,
        DRIVE_INTAKE_POLL_SECONDS: '1',
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
    expect(egress.blocked).toEqual([]);
    egress?.dispose();
  });

  it('takes in a file already in the folder at the first poll, files it by the template and trashes the intake copy', async () => {
    const intake = await newIntake();
    const r = await intake.pollOnce();
    expect(r.files).toEqual([{ fileId: before.id, name: 'before.pdf', outcome: 'recorded' }]);
    const email = (await emailOf(before))!;
    expect(email).toMatchObject({ source: 'drive', subject: 'before.pdf' });
    await waitForDone(t.db, email.id);
    const [a] = await attachmentsOf(email.id);
    expect(a).toMatchObject({ verdict: 'accepted', drive_status: 'uploaded', filename: 'before.pdf' });
    expect(fake.content(a!.drive_file_id!).equals(beforeBytes)).toBe(true);
    expect(a!.drive_folder).toMatch(/^\d{4}\/\d{2}\/drive-intake$/);
    expect(fake.file(before.id)!.trashed).toBe(true);
    // The page token is kept in MySQL.
    expect(
      await t.db.selectFrom('drive_intake_state').selectAll().where('folder_id', '=', folder.id).execute(),
    ).toHaveLength(1);
  });

  it('takes in new files through the changes API: a file, a Google Doc as PDF, one too large, one not exportable', async () => {
    const photo = await png(40, 30);
    const docPdf = pdf('Exported plan');
    const later = fake.seed({
      name: 'photo.png',
      mimeType: 'image/png',
      parents: [folder.id],
      content: photo,
    });
    const doc = fake.seed({
      name: 'Plan',
      mimeType: 'application/vnd.google-apps.document',
      parents: [folder.id],
      exports: { 'application/pdf': docPdf },
    });
    const huge = fake.seed({
      name: 'huge.bin',
      mimeType: 'application/octet-stream',
      parents: [folder.id],
      content: Buffer.alloc(MAX + 1, 7),
    });
    const form = fake.seed({
      name: 'Survey',
      mimeType: 'application/vnd.google-apps.form',
      parents: [folder.id],
    });
    // Elsewhere in Drive: not the intake's business.
    fake.seed({ name: 'other.pdf', mimeType: 'application/pdf', parents: ['root'], content: pdf('other') });

    const r = await (await newIntake()).pollOnce();
    expect(Object.fromEntries(r.files.map((f) => [f.name, f.outcome]))).toEqual({
      'photo.png': 'recorded',
      Plan: 'exported',
      'huge.bin': 'too_large',
      Survey: 'not_exportable',
    });

    const photoEmail = (await emailOf(later))!;
    await waitForDone(t.db, photoEmail.id);
    const [p] = await attachmentsOf(photoEmail.id);
    expect(p).toMatchObject({ verdict: 'accepted', drive_status: 'uploaded', sha256: sha(photo) });

    const docEmail = (await emailOf(doc))!;
    await waitForDone(t.db, docEmail.id);
    const [d] = await attachmentsOf(docEmail.id);
    expect(d).toMatchObject({ filename: 'Plan.pdf', declared_type: 'application/pdf', verdict: 'accepted' });
    expect(fake.content(d!.drive_file_id!).equals(docPdf)).toBe(true);
    expect(fake.file(doc.id)!.trashed).toBe(true);

    const hugeEmail = (await emailOf(huge))!;
    await waitForDone(t.db, hugeEmail.id);
    const [h] = await attachmentsOf(hugeEmail.id);
    expect(h).toMatchObject({ verdict: 'rejected', stored: 0, drive_file_id: null, size: MAX + 1 });
    expect(fake.file(huge.id)!.trashed).toBe(true);

    const formEmail = (await emailOf(form))!;
    expect(formEmail.attachment_count).toBe(0);
    expect(formEmail.warnings).toContain('cannot be exported');
    expect(fake.file(form.id)!.trashed).toBe(false);
  });

  it('leaves a file that changed while being read, and takes its new version at the next poll', async () => {
    const draft = fake.seed({
      name: 'draft.pdf',
      mimeType: 'application/pdf',
      parents: [folder.id],
      content: pdf('Draft one'),
    });
    const final = pdf('Draft two, longer than the first one');
    fake.changeOnNextDownload(draft.id, final);
    const intake = await newIntake();
    const first = await intake.pollOnce();
    expect(first.files).toEqual([{ fileId: draft.id, name: 'draft.pdf', outcome: 'changed_while_read' }]);
    expect(fake.file(draft.id)!.trashed).toBe(false);
    const second = await intake.pollOnce();
    expect(second.files).toEqual([{ fileId: draft.id, name: 'draft.pdf', outcome: 'recorded' }]);
    const email = (await emailOf(draft))!;
    await waitForDone(t.db, email.id);
    const [a] = await attachmentsOf(email.id);
    expect(a!.sha256).toBe(sha(final));
  });

  it('after a restart neither misses nor repeats a file', async () => {
    const count = await emailCount();
    const again = await (await newIntake()).pollOnce();
    expect(again.files).toEqual([]);
    expect(await emailCount()).toBe(count);
    const next = fake.seed({
      name: 'next.pdf',
      mimeType: 'application/pdf',
      parents: [folder.id],
      content: pdf('Next'),
    });
    const [one, two] = await Promise.all([(await newIntake()).pollOnce(), (await newIntake()).pollOnce()]);
    // Two pollers at once (two drive pods): one polls, the other finds the folder taken.
    expect([one.polled, two.polled].filter(Boolean)).toHaveLength(1);
    expect([...one.files, ...two.files]).toEqual([
      { fileId: next.id, name: 'next.pdf', outcome: 'recorded' },
    ]);
    expect(await emailCount()).toBe(count + 1);
  });

  it('runs in the drive role, polling DRIVE_INTAKE_FOLDER_ID', async () => {
    const dropped = fake.seed({
      name: 'by-the-loop.pdf',
      mimeType: 'application/pdf',
      parents: [loopFolder.id],
      content: pdf('Loop'),
    });
    const email = await waitFor(() => emailOf(dropped), 15_000, 'intake loop');
    await waitForDone(t.db, email.id);
    expect((await attachmentsOf(email.id))[0]).toMatchObject({ drive_status: 'uploaded' });
  });
});
