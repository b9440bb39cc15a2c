import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderFolderTemplate } from './consumers/drive-upload/folder-template.js';
import { postroomTopology } from './infra/broker/subscriptions.js';
import { loadConfig } from './infra/config.js';
import { startPostroom, type Postroom } from './main.js';
import { deleteTestTopology, testLogger, testNamespace, waitFor } from './test/broker.js';
import { createTestDatabase, type TestDatabase } from './test/db.js';
import { startDovecot, imapEnv, type DovecotServer } from './test/dovecot.js';
import { FakeDrive, FOLDER_MIME, guardEgress } from './test/fake-drive.js';
import { png as pngBytes, windowsExe } from './test/file-fixtures.js';
import {
  base64Lines,
  nestedMultipartMessage,
  plainTextMessage,
  sha256,
  SMALL_PDF,
} from './test/mail-corpus.js';
import { TEST_AMQP_URL } from './test/env.js';

/** A mail with three attachments: a PDF, a PNG sent as octet-stream, and a Windows program named .pdf. */
function invoiceMail(messageId: string, png: Buffer): Buffer {
  const exe = windowsExe();
  const part = (type: string, name: string, bytes: Buffer) =>
    [
      `--b1`,
      `Content-Type: ${type}; name="${name}"`,
      `Content-Disposition: attachment; filename="${name}"`,
      'Content-Transfer-Encoding: base64',
      '',
      base64Lines(bytes),
    ].join('\r\n');
  return Buffer.from(
    [
      'From: "Ana" <Ana@Example.com>',
      'To: inbox@postroom.test',
      'Subject: Invoice November',
      'Date: Thu, 26 Nov 2026 10:00:00 +0000',
      `Message-ID: <${messageId}>`,
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain',
      '',
      'Please find the invoice attached.',
      part('application/pdf', 'invoice.pdf', SMALL_PDF),
      part('application/octet-stream', 'scan.bin', png),
      part('application/pdf', 'totally-safe.pdf', exe),
      '--b1--',
      '',
    ].join('\r\n'),
  );
}

describe('the whole pipeline: IMAP to analysis to Drive, in one process', () => {
  let dovecot: DovecotServer;
  let t: TestDatabase;
  let fake: FakeDrive;
  let egress: ReturnType<typeof guardEgress>;
  let app: Postroom;
  const namespace = testNamespace('pipeline');

  beforeAll(async () => {
    egress = guardEgress();
    dovecot = await startDovecot();
    t = await createTestDatabase('pipeline');
    fake = await FakeDrive.start();
    const config = loadConfig({
      AMQP_URL: TEST_AMQP_URL,
      ...imapEnv(dovecot),
      ROLES: 'imap,analysis,drive',
      MYSQL_URL: t.url,
      DRIVE_ACCESS_TOKEN: 'fake-drive-token',
      DRIVE_API_URL: fake.url,
      LOG_LEVEL: 'silent',
    });
    app = await startPostroom(config, {
      log: testLogger(),
      namespace,
      httpPort: 0,
      retryDelaysMs: [100, 200, 400],
    });
  });
  afterAll(async () => {
    await app?.stop();
    await deleteTestTopology(postroomTopology({ namespace }));
    await dovecot?.stop();
    await fake?.close();
    await t?.drop();
    egress?.dispose();
  });

  const emailByMessageId = (id: string) =>
    t.db.selectFrom('emails').selectAll().where('message_id', '=', id).executeTakeFirst();

  it('records, judges and files every attachment of a mail exactly once, and closes the mail', async () => {
    const png = await pngBytes(64, 48);
    await dovecot.append(invoiceMail('invoice-1@mail.example', png));
    await dovecot.append(plainTextMessage({ messageId: 'text-1@mail.example' }));
    await dovecot.append(nestedMultipartMessage({ messageId: 'nested-1@mail.example' }));

    const email = await waitFor(
      async () => {
        const e = await emailByMessageId('invoice-1@mail.example');
        return e?.status === 'done' ? e : null;
      },
      30_000,
      'invoice mail done',
    );
    expect(email.from_address).toBe('ana@example.com');
    const atts = await t.db
      .selectFrom('attachments')
      .selectAll()
      .where('email_id', '=', email.id)
      .orderBy('seq')
      .execute();
    const byName = Object.fromEntries(atts.map((a) => [a.filename, a]));
    expect(byName['invoice.pdf']).toMatchObject({
      verdict: 'accepted',
      detected_type: 'application/pdf',
      drive_status: 'uploaded',
    });
    expect(byName['scan.bin']).toMatchObject({
      verdict: 'accepted',
      detected_type: 'image/png',
      drive_status: 'uploaded',
      image_width: 64,
      image_height: 48,
    });
    expect(byName['scan.bin']?.thumbnail_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(byName['totally-safe.pdf']).toMatchObject({
      verdict: 'quarantined',
      drive_status: 'not-filed',
      drive_file_id: null,
    });

    // In Drive: the two accepted files, byte-exact, in <yyyy>/<mm>/ana@example.com; nothing else.
    const files = fake.files().filter((f) => f.mimeType !== FOLDER_MIME);
    const mine = files.filter((f) => f.appProperties?.['emailId'] === email.id);
    expect(mine.map((f) => f.name).sort()).toEqual(['invoice.pdf', 'scan.bin']);
    expect(fake.content(mine.find((f) => f.name === 'invoice.pdf')!.id).equals(SMALL_PDF)).toBe(true);
    expect(sha256(fake.content(mine.find((f) => f.name === 'scan.bin')!.id))).toBe(sha256(png));
    const folder = fake.files().find((f) => f.id === mine[0]!.parents[0]);
    expect(folder?.name).toBe('ana@example.com');

    // The mail is marked seen on the server only after it was recorded; the other two mails are done too.
    await waitFor(
      async () => (await dovecot.messages()).every((m) => m.flags.includes('\\Seen')),
      15_000,
      'all seen',
    );
    await waitFor(
      async () => (await emailByMessageId('text-1@mail.example'))?.status === 'done',
      15_000,
      'text mail done',
    );
    await waitFor(
      async () => (await emailByMessageId('nested-1@mail.example'))?.status === 'done',
      15_000,
      'nested mail done',
    );

    // The timeline shows every stage.
    const stages = await t.db
      .selectFrom('timeline')
      .select(['stage', 'event'])
      .where('email_id', '=', email.id)
      .orderBy('id')
      .execute();
    expect(stages.map((s) => s.stage)).toEqual(expect.arrayContaining(['ingest', 'analysis', 'drive']));
    expect(stages.at(-1)).toMatchObject({ stage: 'drive', event: 'email.processed' });
    const processed = await t.db
      .selectFrom('outbox')
      .select('body')
      .where('routing_key', '=', 'email.processed')
      .where('correlation_id', '=', email.id)
      .execute();
    expect(processed).toHaveLength(1);
  });

  it('treats the same Message-ID arriving again as the same email', async () => {
    const before = await t.db.selectFrom('emails').select('id').execute();
    await dovecot.append(invoiceMail('invoice-1@mail.example', await pngBytes(64, 48)));
    await waitFor(
      async () =>
        (await dovecot.messages()).length === 4 &&
        (await dovecot.messages()).every((m) => m.flags.includes('\\Seen')),
      15_000,
      'fourth mail seen',
    );
    const after = await t.db.selectFrom('emails').select('id').execute();
    expect(after.length).toBe(before.length);
    expect(egress.blocked).toEqual([]);
  });
});

describe('without Google credentials, files go to STORAGE_DIR in the same layout', () => {
  it('files an accepted attachment under STORAGE_DIR/<yyyy>/<mm>/<from>', async () => {
    const dovecot = await startDovecot();
    const t = await createTestDatabase('local');
    const dir = await mkdtemp(join(tmpdir(), 'postroom-storage-'));
    const namespace = testNamespace('local');
    const app = await startPostroom(
      loadConfig({
        AMQP_URL: TEST_AMQP_URL,
        ...imapEnv(dovecot),
        ROLES: 'all',
        MYSQL_URL: t.url,
        STORAGE_DIR: dir,
        INBOX_DIR: join(dir, 'inbox'),
      }),
      {
        log: testLogger(),
        namespace,
        httpPort: 0,
      },
    );
    try {
      await dovecot.append(invoiceMail('local-1@mail.example', await pngBytes(10, 10)));
      await waitFor(
        async () => (await t.db.selectFrom('emails').select('status').executeTakeFirst())?.status === 'done',
        30_000,
        'done',
      );
      // The folder comes from the time the server received the mail (today), not from its Date header.
      const row = await t.db.selectFrom('emails').select('received_at').executeTakeFirstOrThrow();
      const folder = join(
        dir,
        ...renderFolderTemplate('{yyyy}/{mm}/{from}', {
          date: row.received_at,
          from: 'ana@example.com',
          subject: '',
        }),
      );
      expect((await readFile(join(folder, 'invoice.pdf'))).equals(SMALL_PDF)).toBe(true);
      await expect(readFile(join(folder, 'totally-safe.pdf'))).rejects.toThrow();
    } finally {
      await app.stop();
      await deleteTestTopology(postroomTopology({ namespace }));
      await dovecot.stop();
      await t.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
