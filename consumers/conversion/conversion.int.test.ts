import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EmailProcessedV1 } from '../../contracts/index.js';
import { createMysqlBlobStore } from '../../infra/blobs/mysql-blob-store.js';
import { postroomTopology } from '../../infra/broker/subscriptions.js';
import { loadConfig } from '../../infra/config.js';
import { recordEmail } from '../../infra/db/repositories/emails.repository.js';
import { startPostroom } from '../../main.js';
import { deleteTestTopology, testLogger, testNamespace, waitFor } from '../../test/broker.js';
import { createTestDatabase } from '../../test/db.js';
import { FakeGotenberg } from '../../test/fake-gotenberg.js';
import { FIXTURE_WORDS, NO_SOFFICE, officeFixture, pdfText, SOFFICE } from '../../test/office.js';
import { TEST_AMQP_URL } from '../../test/env.js';

const TOKEN = 'conversion-test-token';
const FOLDER = ['2026', '11', 'ana@example.com'];
const DOCX = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';

/** A Postroom of analysis, Drive (local filing), convert and the API, on its own database and queues. */
async function startStack(label: string, env: Record<string, string>) {
  const t = await createTestDatabase(label);
  const storage = await mkdtemp(join(tmpdir(), `postroom-${label}-`));
  const namespace = testNamespace(label);
  const app = await startPostroom(
    loadConfig({
      AMQP_URL: TEST_AMQP_URL,
      ROLES: 'analysis,drive,convert,api',
      MYSQL_URL: t.url,
      STORAGE_DIR: storage,
      API_TOKENS: TOKEN,
      LOG_LEVEL: 'silent',
      ...env,
    }),
    { log: testLogger(), namespace, httpPort: 0, retryDelaysMs: [100, 200, 400] },
  );
  const blobs = createMysqlBlobStore(t.db);

  /** Records a mail from ana@example.com with these attachments, as the IMAP poller would. */
  const mail = async (files: { name: string; bytes: Buffer; type?: string }[]) => {
    const attachments = [];
    for (const f of files) {
      const stored = await blobs.put(f.bytes);
      attachments.push({
        id: randomUUID(),
        parentId: null,
        filename: f.name,
        originalFilename: f.name,
        declaredType: f.type ?? DOCX,
        disposition: 'attachment' as const,
        contentId: null,
        size: stored.size,
        sha256: stored.sha256,
        stored: true,
      });
    }
    const { emailId } = await recordEmail(t.db, {
      source: 'imap',
      mailbox: 'INBOX',
      uid: Math.floor(Math.random() * 1e9),
      uidValidity: '1',
      receivedAt: new Date('2026-11-26T10:00:00Z'),
      parsed: {
        messageId: `${randomUUID()}@test`,
        subject: 'Quarterly ledger',
        from: 'ana@example.com',
        size: 1000,
        warnings: [],
        attachments,
      },
    });
    return { emailId, ids: attachments.map((a) => a.id) };
  };
  const done = (emailId: string) =>
    waitFor(
      async () => {
        const e = await t.db.selectFrom('emails').selectAll().where('id', '=', emailId).executeTakeFirst();
        return e?.status === 'done' ? e : null;
      },
      60_000,
      `email ${emailId} done`,
    );
  const attachment = (id: string) =>
    t.db.selectFrom('attachments').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const api = (path: string) =>
    fetch(`http://127.0.0.1:${app.port}${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  const filed = async () =>
    (await readdir(join(storage, ...FOLDER))).filter((n) => !n.startsWith('.')).sort();
  const processed = async (emailId: string) =>
    (await t.db.selectFrom('outbox').select('body').where('routing_key', '=', 'email.processed').execute())
      .map((r) => JSON.parse(String(r.body)) as EmailProcessedV1)
      .filter((e) => e.data.emailId === emailId);
  const stop = async () => {
    await app.stop();
    await deleteTestTopology(postroomTopology({ namespace }));
    await t.drop();
    await rm(storage, { recursive: true, force: true });
  };
  return { t, app, storage, mail, done, attachment, api, filed, processed, stop };
}

describe('conversion in the pipeline (CONVERTER=gotenberg, a fake Gotenberg)', () => {
  let fake: FakeGotenberg;
  let s: Awaited<ReturnType<typeof startStack>>;

  beforeAll(async () => {
    fake = await FakeGotenberg.start();
    s = await startStack('convpipe', { CONVERTER: 'gotenberg', GOTENBERG_URL: fake.url });
  }, 60_000);
  afterAll(async () => {
    await s?.stop();
    await fake?.close();
  });

  it('files a mailed .docx and its PDF side by side, shows the first page as its thumbnail and announces the PDF', async () => {
    const { emailId, ids } = await s.mail([{ name: 'report.docx', bytes: officeFixture('words.docx') }]);
    await s.done(emailId);
    const a = await s.attachment(ids[0]!);
    expect(a).toMatchObject({
      verdict: 'accepted',
      drive_status: 'uploaded',
      conversion_status: 'converted',
      conversion_converter: 'gotenberg',
      pdf_filename: 'report.pdf',
      pdf_drive_status: 'uploaded',
    });
    expect(await s.filed()).toEqual(['report.docx', 'report.pdf']);
    const filedPdf = await readFile(join(s.storage, ...FOLDER, 'report.pdf'));
    expect(filedPdf.subarray(0, 5).toString('latin1')).toBe('%PDF-');

    const res = await s.api(`/api/v1/attachments/${a.id}`);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      thumbnailUrl: `/api/v1/attachments/${a.id}/thumbnail`,
      conversion: {
        status: 'converted',
        converter: 'gotenberg',
        pdf: {
          filename: 'report.pdf',
          size: filedPdf.length,
          url: `/api/v1/attachments/${a.id}/converted`,
          drive: { status: 'uploaded' },
        },
      },
    });
    const thumb = await s.api(`/api/v1/attachments/${a.id}/thumbnail`);
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get('content-type')).toBe('image/webp');
    const converted = await s.api(`/api/v1/attachments/${a.id}/converted`);
    expect(converted.status).toBe(200);
    expect(converted.headers.get('content-type')).toBe('application/pdf');
    expect(converted.headers.get('content-disposition')).toMatch(/^attachment; filename="?report\.pdf"?$/);
    expect(Buffer.from(await converted.arrayBuffer()).equals(filedPdf)).toBe(true);

    const [event, more] = await s.processed(emailId);
    expect(more).toBeUndefined();
    expect(event?.data.attachments[0]).toMatchObject({
      filename: 'report.docx',
      driveStatus: 'uploaded',
      conversion: { status: 'converted', pdfFilename: 'report.pdf', driveStatus: 'uploaded' },
    });
    expect(event?.data.attachments[0]?.conversion?.link).toMatch(/^file:.*report\.pdf$/);
  }, 60_000);

  it('converts the same bytes once, and files the PDF under each attachment own name', async () => {
    const before = fake.requests.length;
    const { emailId, ids } = await s.mail([
      { name: 'copy of report.docx', bytes: officeFixture('words.docx') },
    ]);
    await s.done(emailId);
    expect(fake.requests.length).toBe(before);
    expect(await s.attachment(ids[0]!)).toMatchObject({
      conversion_status: 'converted',
      pdf_filename: 'copy of report.pdf',
    });
    // the same PDF bytes are already in the folder (as report.pdf): linked, not filed twice
    expect((await s.attachment(ids[0]!)).pdf_drive_status).toBe('skipped');
  }, 60_000);

  it('records a document the converter refuses as failed with the reason, and still files the original and closes the mail', async () => {
    fake.failNext(400, 1);
    const { emailId, ids } = await s.mail([{ name: 'damaged.docx', bytes: officeFixture('broken.docx') }]);
    const email = await s.done(emailId);
    expect(email.status).toBe('done');
    const a = await s.attachment(ids[0]!);
    expect(a).toMatchObject({
      verdict: 'accepted',
      drive_status: 'uploaded',
      conversion_status: 'failed',
      pdf_sha256: null,
    });
    expect(a.conversion_reason).toMatch(/Gotenberg could not convert the document \(400/);
    expect(await s.filed()).toContain('damaged.docx');
    expect(await s.filed()).not.toContain('damaged.pdf');
    const converted = await s.api(`/api/v1/attachments/${a.id}/converted`);
    expect(converted.status).toBe(404);
    expect(await converted.json()).toMatchObject({
      error: {
        code: 'CONVERSION.NOT_FOUND',
        message: expect.stringMatching(/conversion failed: Gotenberg could not/) as string,
      },
    });
    const [event] = await s.processed(emailId);
    expect(event?.data.attachments[0]?.conversion).toMatchObject({
      status: 'failed',
      pdfFilename: null,
      link: null,
    });
  }, 60_000);

  it('leaves what is not an office document alone: a PDF gets its first page as thumbnail and no conversion', async () => {
    const pdf = (await import('../../test/file-fixtures.js')).pdf('Invoice 42');
    const before = fake.requests.length;
    const { emailId, ids } = await s.mail([{ name: 'invoice.pdf', bytes: pdf, type: 'application/pdf' }]);
    await s.done(emailId);
    const a = await s.attachment(ids[0]!);
    expect(a).toMatchObject({ verdict: 'accepted', conversion_status: null, pdf_sha256: null });
    expect(a.thumbnail_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(fake.requests.length).toBe(before);
    const [event] = await s.processed(emailId);
    expect(event?.data.attachments[0]).not.toHaveProperty('conversion');
  }, 60_000);
});

if (!SOFFICE) console.warn(`conversion.int.test.ts (CONVERTER=local) skipped: ${NO_SOFFICE}`);

describe.skipIf(!SOFFICE)('conversion in the pipeline (CONVERTER=local, LibreOffice)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  beforeAll(async () => {
    s = await startStack('convlocal', { CONVERTER: 'local', PATH: process.env['PATH'] ?? '' });
  }, 60_000);
  afterAll(async () => {
    await s?.stop();
  });

  it('files a mailed .xlsx with a PDF holding its words, and a damaged .docx changes nothing but its conversion', async () => {
    const { emailId, ids } = await s.mail([
      { name: 'ledger.xlsx', bytes: officeFixture('words.xlsx'), type: 'application/vnd.ms-excel' },
      { name: 'damaged.docx', bytes: officeFixture('broken.docx') },
    ]);
    await s.done(emailId);
    const [ledger, damaged] = [await s.attachment(ids[0]!), await s.attachment(ids[1]!)];
    expect(ledger).toMatchObject({
      conversion_status: 'converted',
      conversion_converter: 'local',
      pdf_drive_status: 'uploaded',
    });
    expect(damaged).toMatchObject({
      verdict: 'accepted',
      drive_status: 'uploaded',
      conversion_status: 'failed',
    });
    expect(damaged.conversion_reason).toMatch(/LibreOffice could not convert the document/);
    expect(await s.filed()).toEqual(['damaged.docx', 'ledger.pdf', 'ledger.xlsx']);
    const text = pdfText(await readFile(join(s.storage, ...FOLDER, 'ledger.pdf'))).toLowerCase();
    for (const word of FIXTURE_WORDS) expect(text).toContain(word);
  }, 90_000);
});
