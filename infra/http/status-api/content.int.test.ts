import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostroom, type Postroom } from '../../../main.js';
import { deleteTestTopology, testLogger, testNamespace } from '../../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../../test/db.js';
import {
  csv,
  docx,
  empty,
  gif,
  jpegWithOrientation,
  pdf,
  png,
  webp,
  windowsExe,
  zipOfTexts,
} from '../../../test/file-fixtures.js';
import { NUMBERS_CSV, SMALL_PDF, TINY_PNG } from '../../../test/mail-corpus.js';
import { recordTestEmail, waitForDone, type TestFile } from '../../../test/recorded-mail.js';
import { createMysqlBlobStore } from '../../blobs/mysql-blob-store.js';
import { postroomTopology } from '../../broker/subscriptions.js';
import { loadConfig } from '../../config.js';
import { startStatusApi } from './index.js';
import { documentValidator, type DocumentValidator } from './openapi-check.js';
import { TEST_AMQP_URL } from '../../../test/env.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Bytes that are not all the same, over several 1 MiB blob chunks. */
function spread(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7919 + (i >> 11)) & 0xff;
  return b;
}

/** Downloads through the real pipeline: analysis and local filing ran first, as in production. */
describe('GET /api/v1/attachments/{id}/content', () => {
  const namespace = testNamespace('content');
  let t: TestDatabase;
  let app: Postroom;
  let storage: string;
  let base: string;
  let doc: DocumentValidator;
  const files = new Map<string, { file: TestFile; bytes: Buffer; id: string }>();
  const BIG_NAME = 'Größe — отчёт 2026.bin';

  beforeAll(async () => {
    t = await createTestDatabase('content');
    storage = await mkdtemp(join(tmpdir(), 'postroom-content-'));
    const config = loadConfig({
      AMQP_URL: TEST_AMQP_URL,
      ROLES: 'analysis,drive,api',
      MYSQL_URL: t.url,
      STORAGE_DIR: storage,
      API_TOKENS: 't1',
      API_RATE_LIMIT_PER_MINUTE: '100000',
      LOG_LEVEL: 'silent',
    });
    app = await startPostroom(config, {
      log: testLogger(),
      namespace,
      httpPort: 0,
      starters: { api: (ctx) => startStatusApi(ctx) },
      retryDelaysMs: [100, 200],
    });
    await app.broker.waitConnected();
    base = `http://127.0.0.1:${app.port}`;
    doc = documentValidator((await (await fetch(`${base}/openapi.json`)).json()) as Record<string, unknown>);

    // Every kind of attachment of the test corpus, plus a multi-chunk file with a non-ASCII name.
    const list: TestFile[] = [
      { name: 'invoice.pdf', type: 'application/pdf', bytes: pdf('Invoice 7') },
      { name: 'small.pdf', type: 'application/pdf', bytes: SMALL_PDF },
      { name: 'photo.png', type: 'image/png', bytes: await png(64, 48) },
      { name: 'tiny.png', type: 'application/octet-stream', bytes: TINY_PNG },
      { name: 'anim.gif', type: 'image/gif', bytes: await gif() },
      { name: 'pic.webp', type: 'image/webp', bytes: await webp() },
      { name: 'turned.jpg', type: 'image/jpeg', bytes: await jpegWithOrientation() },
      { name: 'table.csv', type: 'text/csv', bytes: csv() },
      { name: 'numbers.csv', type: 'text/csv', bytes: NUMBERS_CSV },
      {
        name: 'letter.docx',
        type: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
        bytes: docx(),
      },
      { name: 'texts.zip', type: 'application/zip', bytes: zipOfTexts() },
      { name: 'empty.txt', type: 'text/plain', bytes: empty() },
      { name: BIG_NAME, type: 'application/octet-stream', bytes: spread(2 * 1024 * 1024 + 12_345) },
      { name: 'statement.pdf', type: 'application/pdf', bytes: windowsExe() },
      { name: 'huge.bin', type: 'application/octet-stream', bytes: Buffer.from('not kept'), stored: false },
    ];
    const blobs = createMysqlBlobStore(t.db);
    const { emailId, attachments } = await recordTestEmail(t.db, blobs, { files: list });
    list.forEach((file, i) =>
      files.set(file.name, { file, bytes: file.bytes as Buffer, id: attachments[i]!.id }),
    );
    await waitForDone(t.db, emailId);
  });
  afterAll(async () => {
    await app?.stop();
    await deleteTestTopology(postroomTopology({ namespace, retryDelaysMs: [100, 200] }));
    await t?.drop();
    if (storage) await rm(storage, { recursive: true, force: true });
  });

  async function get(id: string, init: { query?: string; headers?: Record<string, string> } = {}) {
    const res = await fetch(`${base}/api/v1/attachments/${id}/content${init.query ?? ''}`, {
      headers: { authorization: 'Bearer t1', ...init.headers },
    });
    const type = res.headers.get('content-type') ?? '';
    const body = Buffer.from(await res.arrayBuffer());
    const json = type.includes('application/json') ? JSON.parse(body.toString('utf8')) : null;
    if (json) doc.expectValid('/api/v1/attachments/{id}/content', 'get', res.status, json);
    return { status: res.status, headers: res.headers, body, json };
  }

  it('serves every accepted kind byte for byte, with its detected type, ETag and attachment disposition', async () => {
    const rows = await t.db.selectFrom('attachments').selectAll().execute();
    const served: string[] = [];
    for (const { file, bytes, id } of files.values()) {
      const row = rows.find((r) => r.id === id)!;
      if (row.verdict === 'quarantined' || file.stored === false) continue;
      const r = await get(id);
      expect(r.status, file.name).toBe(200);
      expect(sha(r.body), file.name).toBe(sha(bytes));
      expect(r.body.length, file.name).toBe(bytes.length);
      expect(r.headers.get('etag')).toBe(`"${sha(bytes)}"`);
      expect(r.headers.get('content-type')).toBe(row.detected_type ?? 'application/octet-stream');
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      expect(r.headers.get('accept-ranges')).toBe('bytes');
      expect(r.headers.get('content-disposition')).toMatch(/^attachment; filename=/);
      served.push(file.name);
    }
    // Not a vacuous loop: all but the quarantined and the never-stored file were served.
    expect(served).toHaveLength(files.size - 2);
    // A PNG sent as application/octet-stream comes back as what it is.
    expect((await get(files.get('tiny.png')!.id)).headers.get('content-type')).toBe('image/png');
  });

  it('names a non-ASCII file with filename* (RFC 6266) and an ASCII fallback', async () => {
    const r = await get(files.get(BIG_NAME)!.id);
    const cd = r.headers.get('content-disposition')!;
    expect(cd).toContain(`filename*=UTF-8''${encodeURIComponent(BIG_NAME).replace(/'/g, '%27')}`);
    expect(cd).toMatch(/filename="[\x20-\x7e]+"/);
  });

  it('serves a range in the middle (across a chunk boundary) as 206, and 416 past the end', async () => {
    const { id, bytes } = files.get(BIG_NAME)!;
    const start = 1024 * 1024 - 100;
    const end = 1024 * 1024 + 99;
    const r = await get(id, { headers: { range: `bytes=${start}-${end}` } });
    expect(r.status).toBe(206);
    expect(r.headers.get('content-range')).toBe(`bytes ${start}-${end}/${bytes.length}`);
    expect(r.body.equals(bytes.subarray(start, end + 1))).toBe(true);

    const tail = await get(id, { headers: { range: 'bytes=-10' } });
    expect(tail.status).toBe(206);
    expect(tail.body.equals(bytes.subarray(bytes.length - 10))).toBe(true);

    const past = await get(id, { headers: { range: `bytes=${bytes.length}-` } });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe(`bytes */${bytes.length}`);
    expect(past.json.error.code).toBe('RANGE.NOT_SATISFIABLE');

    // An If-None-Match with the SHA-256 needs no bytes at all.
    const again = await get(id, { headers: { 'if-none-match': `"${sha(bytes)}"` } });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
  });

  it('refuses a quarantined file unless unsafe=true, and then only as application/octet-stream', async () => {
    const { id, bytes } = files.get('statement.pdf')!;
    const row = await t.db
      .selectFrom('attachments')
      .select('verdict')
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    expect(row.verdict).toBe('quarantined');
    const refused = await get(id);
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe('ATTACHMENT.QUARANTINED');
    expect(refused.headers.get('content-disposition')).toBeNull();
    const forced = await get(id, { query: '?unsafe=true' });
    expect(forced.status).toBe(200);
    expect(forced.headers.get('content-type')).toBe('application/octet-stream');
    expect(forced.body.equals(bytes)).toBe(true);
  });

  it('answers 404 for bytes never kept and for an unknown id, 400 for a bad query', async () => {
    const huge = await get(files.get('huge.bin')!.id);
    expect(huge.status).toBe(404);
    expect(huge.json.error.code).toBe('CONTENT.NOT_STORED');
    expect((await get('00000000-0000-4000-8000-000000000000')).status).toBe(404);
    expect((await get(files.get('invoice.pdf')!.id, { query: '?unsafe=maybe' })).status).toBe(400);
  });
});
