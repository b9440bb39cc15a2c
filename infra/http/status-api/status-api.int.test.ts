import { pdfPreviewAvailable } from '../../documents/pdf-preview.js';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contracts } from '../../../contracts/index.js';
import { startPostroom, type Postroom } from '../../../main.js';
import {
  deleteTestTopology,
  startTestBroker,
  testLogger,
  testNamespace,
  waitFor,
} from '../../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../../test/db.js';
import { pdf, png, windowsExe } from '../../../test/file-fixtures.js';
import { createMysqlBlobStore } from '../../blobs/mysql-blob-store.js';
import { createEvent } from '../../broker/events.js';
import { postroomTopology, SUBSCRIPTIONS } from '../../broker/subscriptions.js';
import { names } from '../../broker/topology.js';
import { loadConfig } from '../../config.js';
import { messageIdHash, recordEmail } from '../../db/repositories/emails.repository.js';
import { startStatusApi } from './index.js';
import { documentValidator, type DocumentValidator } from './openapi-check.js';
import { TEST_AMQP_URL } from '../../../test/env.js';

/** The status API over mail that went through the real analysis and Drive (local) consumers. */
describe('status API on data produced by the real pipeline', () => {
  const namespace = testNamespace('api');
  let t: TestDatabase;
  let app: Postroom;
  let storage: string;
  let base: string;
  let doc: DocumentValidator;
  let uid = 0;

  beforeAll(async () => {
    t = await createTestDatabase('api');
    storage = await mkdtemp(join(tmpdir(), 'postroom-api-'));
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
  });
  afterAll(async () => {
    await app?.stop();
    await deleteTestTopology(postroomTopology({ namespace, retryDelaysMs: [100, 200] }));
    await t?.drop();
    if (storage) await rm(storage, { recursive: true, force: true });
  });

  /** Calls the API with token t1; checks JSON answers against the OpenAPI document of `route`. */
  async function api(path: string, route?: string, init: RequestInit = {}) {
    const res = await fetch(`${base}/api/v1${path}`, {
      ...init,
      headers: { authorization: 'Bearer t1', ...init.headers },
    });
    const type = res.headers.get('content-type') ?? '';
    const body: unknown = type.includes('json') ? await res.json() : Buffer.from(await res.arrayBuffer());
    if (route && type.includes('json'))
      doc.expectValid(route, (init.method ?? 'get').toLowerCase(), res.status, body);
    return { status: res.status, headers: res.headers, body: body as any }; // eslint-disable-line @typescript-eslint/no-explicit-any
  }

  /** Records one email the way the IMAP poller does: bytes in the blob store, then one transaction. */
  async function record(
    opts: {
      subject?: string;
      from?: string;
      files?: { name: string; type: string; bytes: Buffer }[];
      receivedAt?: Date;
    } = {},
  ) {
    const blobs = createMysqlBlobStore(app.database.db);
    const attachments = [];
    for (const f of opts.files ?? []) {
      const { sha256, size } = await blobs.put(f.bytes);
      attachments.push({
        id: randomUUID(),
        parentId: null,
        filename: f.name,
        originalFilename: f.name,
        declaredType: f.type,
        disposition: 'attachment' as const,
        contentId: null,
        size,
        sha256,
        stored: true,
      });
    }
    const messageId = `${randomUUID()}@mail.example`;
    uid += 1;
    const { emailId } = await recordEmail(app.database.db, {
      source: 'imap',
      mailbox: 'INBOX',
      uid,
      uidValidity: '7',
      receivedAt: opts.receivedAt ?? new Date(),
      parsed: {
        messageId,
        subject: opts.subject ?? `mail ${uid}`,
        from: opts.from ?? 'ana@example.com',
        size: 1000,
        warnings: [],
        attachments,
      },
    });
    return { emailId, messageId, attachments };
  }

  const isDone = async (id: string) =>
    (await t.db.selectFrom('emails').select('status').where('id', '=', id).executeTakeFirst())?.status ===
    'done';

  let invoice: Awaited<ReturnType<typeof record>>;

  it('shows one email in full: attachments with verdicts, image facts, filing, and its timeline', async () => {
    const image = await png(64, 48);
    invoice = await record({
      subject: 'Invoice November',
      from: 'Ana@Example.com'.toLowerCase(),
      receivedAt: new Date('2026-11-26T10:00:00Z'),
      files: [
        { name: 'invoice.pdf', type: 'application/pdf', bytes: pdf('Invoice 42') },
        { name: 'scan.bin', type: 'application/octet-stream', bytes: image },
        { name: 'totally-safe.pdf', type: 'application/pdf', bytes: windowsExe() },
      ],
    });
    await waitFor(() => isDone(invoice.emailId), 30_000, 'invoice done');

    const { status, body } = await api(`/emails/${invoice.emailId}`, '/api/v1/emails/{id}');
    expect(status).toBe(200);
    expect(body).toMatchObject({
      id: invoice.emailId,
      messageId: invoice.messageId,
      subject: 'Invoice November',
      from: 'ana@example.com',
      receivedAt: '2026-11-26T10:00:00.000Z',
      status: 'done',
      warnings: [],
      calls: [],
      notifications: [],
    });
    const byName = Object.fromEntries(
      (body.attachments as { filename: string }[]).map((a) => [a.filename, a]),
    ) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(byName['invoice.pdf']).toMatchObject({
      verdict: 'accepted',
      detectedType: 'application/pdf',
      image: null,
      // the first page of a PDF is its thumbnail, when poppler-utils is installed
      thumbnailUrl: pdfPreviewAvailable()
        ? `/api/v1/attachments/${byName['invoice.pdf'].id}/thumbnail`
        : null,
      drive: { status: 'uploaded' },
      conversion: null,
    });
    expect(byName['invoice.pdf'].drive.fileId).toEqual(expect.any(String));
    expect(byName['invoice.pdf'].drive.link).toEqual(expect.any(String));
    expect(byName['scan.bin']).toMatchObject({
      declaredType: 'application/octet-stream',
      detectedType: 'image/png',
      disposition: 'attachment',
      parentId: null,
      verdict: 'accepted',
      image: { width: 64, height: 48, format: 'png' },
      drive: { status: 'uploaded' },
    });
    expect(byName['totally-safe.pdf']).toMatchObject({
      verdict: 'quarantined',
      drive: { status: 'not-filed', fileId: null, link: null },
    });
    expect(byName['totally-safe.pdf'].reason).toEqual(expect.any(String));
    const stages = (body.timeline as { stage: string; event: string; at: string }[]).map(
      (e) => `${e.stage}:${e.event}`,
    );
    expect(stages[0]).toBe('ingest:email.received');
    expect(stages.filter((s) => s === 'analysis:attachment.analyzed')).toHaveLength(3);
    expect(stages.at(-1)).toBe('drive:email.processed');
    const times = (body.timeline as { at: string }[]).map((e) => Date.parse(e.at));
    expect([...times].sort((a, b) => a - b)).toEqual(times);

    // The attachment alone, and the thumbnail of the image (WebP from the blob store).
    const scan = await api(`/attachments/${byName['scan.bin'].id}`, '/api/v1/attachments/{id}');
    expect(scan.body).toEqual(byName['scan.bin']);
    const thumb = await api(`/attachments/${byName['scan.bin'].id}/thumbnail`);
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get('content-type')).toBe('image/webp');
    const bytes = thumb.body as Buffer;
    expect(bytes.subarray(0, 4).toString('latin1')).toBe('RIFF');
    expect(bytes.subarray(8, 12).toString('latin1')).toBe('WEBP');
    const again = await api(`/attachments/${byName['scan.bin'].id}/thumbnail`, undefined, {
      // fetch adds Cache-Control: no-cache to conditional requests unless one is given.
      headers: { 'if-none-match': thumb.headers.get('etag') ?? '', 'cache-control': 'max-age=0' },
    });
    expect(again.status).toBe(304);

    // 404 as JSON: no thumbnail (a quarantined file has none), no such attachment or email; 400 for an
    // id that is no UUID.
    expect(
      await api(
        `/attachments/${byName['totally-safe.pdf'].id}/thumbnail`,
        '/api/v1/attachments/{id}/thumbnail',
      ),
    ).toMatchObject({
      status: 404,
      body: { error: { code: 'THUMBNAIL.NOT_FOUND' } },
    });
    expect((await api(`/attachments/${randomUUID()}`, '/api/v1/attachments/{id}')).body.error.code).toBe(
      'ATTACHMENT.NOT_FOUND',
    );
    expect((await api(`/attachments/${randomUUID()}/thumbnail`)).status).toBe(404);
    expect((await api(`/emails/${randomUUID()}`, '/api/v1/emails/{id}')).body.error.code).toBe(
      'EMAIL.NOT_FOUND',
    );
    const bad = await api('/emails/not-a-uuid', '/api/v1/emails/{id}');
    expect(bad).toMatchObject({ status: 400, body: { error: { code: 'VALIDATION.FAILED' } } });
    expect(JSON.stringify(bad.body)).not.toMatch(/at .*\.ts:\d+/);
  });

  it('filters the list by Message-ID (with or without brackets), sender, date and status', async () => {
    const other = await record({ from: 'bob@other.example', receivedAt: new Date('2026-11-20T08:00:00Z') });
    await waitFor(() => isDone(other.emailId), 15_000, 'other done');
    for (const id of [invoice.messageId, `<${invoice.messageId}>`]) {
      const r = await api(`/emails?messageId=${encodeURIComponent(id)}`, '/api/v1/emails');
      expect(r.body.items.map((i: { id: string }) => i.id)).toEqual([invoice.emailId]);
      expect(r.body.nextCursor).toBeNull();
      expect(r.body.items[0]).toMatchObject({
        messageId: invoice.messageId,
        status: 'done',
        attachmentCount: 3,
        recordedAt: expect.any(String),
      });
    }
    expect(
      (await api(`/emails?messageId=${encodeURIComponent('<nobody@nowhere>')}`, '/api/v1/emails')).body.items,
    ).toEqual([]);
    const ids = async (q: string) =>
      ((await api(`/emails?${q}`, '/api/v1/emails')).body.items as { id: string }[]).map((i) => i.id);
    expect(await ids('from=BOB@other.example')).toEqual([other.emailId]);
    expect(await ids('from=@other.example')).toEqual([other.emailId]);
    expect(await ids('from=%40example.com')).toContain(invoice.emailId);
    expect(await ids('since=2026-11-25T00:00:00Z')).toContain(invoice.emailId);
    expect(await ids('since=2026-11-25T00:00:00Z')).not.toContain(other.emailId);
    expect(await ids('since=2026-11-20')).toContain(other.emailId);
    expect(await ids('status=done')).toEqual(expect.arrayContaining([invoice.emailId, other.emailId]));
    expect(await ids('status=processing')).not.toContain(invoice.emailId);

    for (const q of [
      'limit=101',
      'limit=0',
      'status=finished',
      'since=yesterday',
      'colour=blue',
      'cursor=bm9wZQ',
      'limit=1&limit=2',
    ]) {
      const r = await api(`/emails?${q}`, '/api/v1/emails');
      expect(r.status, q).toBe(400);
      expect(r.body.error.code, q).toBe('VALIDATION.FAILED');
    }
    const page = await api('/emails?limit=1', '/api/v1/emails');
    expect(page.body.nextCursor).toEqual(expect.any(String));
    const mixed = await api(`/emails?limit=1&status=done&cursor=${page.body.nextCursor}`, '/api/v1/emails');
    expect(mixed.status).toBe(400);
    expect(mixed.body.error.message).toContain('other filters');
  });

  it('pages through every email exactly once while new mail keeps arriving', async () => {
    const seeded: string[] = [];
    for (let i = 0; i < 23; i++) seeded.push((await record({ subject: `bulk ${i}` })).emailId);
    const existing = new Set((await t.db.selectFrom('emails').select('id').execute()).map((r) => r.id));
    const seen: { id: string; recordedAt: string }[] = [];
    const arrivedMeanwhile: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r = await api(`/emails?limit=5${cursor ? `&cursor=${cursor}` : ''}`, '/api/v1/emails');
      expect(r.status).toBe(200);
      expect(r.body.items.length).toBeLessThanOrEqual(5);
      seen.push(...(r.body.items as { id: string; recordedAt: string }[]));
      cursor = r.body.nextCursor as string | null;
      pages += 1;
      // New mail between every two pages.
      for (let k = 0; k < 2; k++)
        arrivedMeanwhile.push((await record({ subject: `late ${pages}.${k}` })).emailId);
    } while (cursor);
    const ids = seen.map((s) => s.id);
    expect(new Set(ids).size).toBe(ids.length); // no duplicates
    for (const id of existing) expect(ids).toContain(id); // no gaps
    expect(ids.filter((id) => !existing.has(id))).toEqual([]); // later mail lands before page one
    expect(pages).toBe(Math.ceil(existing.size / 5));
    for (let i = 1; i < seen.length; i++) {
      const [a, b] = [seen[i - 1]!, seen[i]!];
      expect(a.recordedAt > b.recordedAt || (a.recordedAt === b.recordedAt && a.id > b.id)).toBe(true);
    }
    expect(arrivedMeanwhile.length).toBeGreaterThan(0);

    // The same with a filter, once everything is done.
    await waitFor(
      async () => (await Promise.all([...seeded, ...arrivedMeanwhile].map(isDone))).every(Boolean),
      30_000,
      'bulk done',
    );
    const doneIds: string[] = [];
    cursor = null;
    do {
      const r = await api(
        `/emails?status=done&limit=7${cursor ? `&cursor=${cursor}` : ''}`,
        '/api/v1/emails',
      );
      doneIds.push(...(r.body.items as { id: string }[]).map((i) => i.id));
      cursor = r.body.nextCursor as string | null;
      await record({ subject: 'later still' });
    } while (cursor);
    expect(new Set(doneIds).size).toBe(doneIds.length);
    expect(doneIds).toEqual(expect.arrayContaining([...seeded, ...arrivedMeanwhile, invoice.emailId]));
  });

  it('keeps an email processing while one of its calls or notifications is pending', async () => {
    const s = app.database.db;
    const now = new Date();
    const callId = randomUUID();
    await s
      .insertInto('calls')
      .values({
        id: callId,
        hook: 'crm',
        event_id: randomUUID(),
        event_type: 'email.processed',
        email_id: invoice.emailId,
        status: 'pending',
        attempts: 1,
        last_status_code: 503,
        last_error: 'HTTP 503',
        idempotency_key: `crm:${callId}`,
        created_at: now,
        updated_at: now,
      })
      .execute();
    await s
      .insertInto('notifications')
      .values({
        id: randomUUID(),
        email_id: invoice.emailId,
        chat_id: '4242',
        status: 'sent',
        telegram_message_id: 17,
        attempts: 1,
        last_error: null,
        created_at: now,
        updated_at: now,
      })
      .execute();
    const detail = await api(`/emails/${invoice.emailId}`, '/api/v1/emails/{id}');
    expect(detail.body).toMatchObject({
      status: 'processing',
      calls: [
        { hook: 'crm', status: 'pending', attempts: 1, lastStatusCode: 503, eventType: 'email.processed' },
      ],
      notifications: [{ chatId: '4242', status: 'sent' }],
    });
    const list = async (status: string) =>
      (
        (await api(`/emails?status=${status}&limit=100`, '/api/v1/emails')).body.items as { id: string }[]
      ).map((i) => i.id);
    expect(await list('processing')).toContain(invoice.emailId);
    expect(await list('done')).not.toContain(invoice.emailId);
    const stats = (await api('/stats', '/api/v1/stats')).body;
    expect(stats.stages.outbound.counts).toEqual({ pending: 1 });
    expect(stats.stages.outbound.oldestPendingSeconds).toBeGreaterThanOrEqual(0);
    expect(stats.stages.notify.counts).toEqual({ sent: 1 });

    await s
      .updateTable('calls')
      .set({ status: 'succeeded', attempts: 2, last_status_code: 200, last_error: null })
      .where('id', '=', callId)
      .execute();
    expect((await api(`/emails/${invoice.emailId}`, '/api/v1/emails/{id}')).body).toMatchObject({
      status: 'done',
      calls: [{ status: 'succeeded', lastStatusCode: 200 }],
    });
    expect(await list('done')).toContain(invoice.emailId);
  });

  it('reports counts per stage, queue depths of every consumer queue and its retry tiers, and ages', async () => {
    // A notifier process elsewhere declared its queue; none consumes it yet, so email.processed waits there.
    const notifier = await startTestBroker(
      postroomTopology({ namespace, consumers: ['telegram-notifier'], retryDelaysMs: [100, 200] }),
    );
    try {
      const later = [await record({ subject: 'counted 1' }), await record({ subject: 'counted 2' })];
      await waitFor(
        async () => (await Promise.all(later.map((l) => isDone(l.emailId)))).every(Boolean),
        15_000,
        'counted done',
      );
      const depth = async () => {
        const r = await api('/stats', '/api/v1/stats');
        expect(r.status).toBe(200);
        return r.body;
      };
      const s = await waitFor(
        async () => {
          const b = await depth();
          return b.queues.find((q: { consumer: string }) => q.consumer === 'telegram-notifier').messages >= 2
            ? b
            : null;
        },
        10_000,
        'notifier depth',
      );
      expect(s.emails.counts.done).toBeGreaterThanOrEqual(27);
      expect(s.stages.analysis.counts).toMatchObject({ accepted: 2, quarantined: 1 });
      expect(s.stages.drive.counts).toMatchObject({ uploaded: 2, 'not-filed': 1 });
      const queues = Object.fromEntries(
        (s.queues as { consumer: string }[]).map((q) => [q.consumer, q]),
      ) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
      expect(Object.keys(queues).sort()).toEqual(Object.keys(SUBSCRIPTIONS).sort());
      const tiers = (consumer: string, messages = 0) =>
        [100, 200].map((delayMs, tier) => ({
          tier,
          delayMs,
          queue: names.retryQueue(namespace, consumer, tier),
          messages,
        }));
      expect(queues['drive-upload']).toEqual({
        consumer: 'drive-upload',
        queue: names.queue(namespace, 'drive-upload'),
        declared: true,
        messages: 0,
        // At least this process's consumer (RabbitMQ may still count one a finished test closed).
        consumers: expect.any(Number),
        retry: tiers('drive-upload'),
      });
      expect(queues['drive-upload'].consumers).toBeGreaterThanOrEqual(1);
      expect(queues['telegram-notifier']).toEqual({
        consumer: 'telegram-notifier',
        queue: names.queue(namespace, 'telegram-notifier'),
        declared: true,
        messages: 2,
        consumers: 0,
        retry: tiers('telegram-notifier'),
      });
      // No process here runs outbound calls: its queue is not declared.
      expect(queues['outbound-api']).toEqual({
        consumer: 'outbound-api',
        queue: names.queue(namespace, 'outbound-api'),
        declared: false,
        messages: 0,
        consumers: 0,
        retry: [],
      });
      expect(s.deadQueue).toEqual({ queue: names.deadQueue(namespace), messages: 0 });
      expect(s.outbox.pending).toBeGreaterThanOrEqual(0);
      expect(new Date(s.generatedAt).getTime()).toBeLessThanOrEqual(Date.now());
    } finally {
      await notifier.close();
    }
  });

  it('lists a parked message with its reason, replays it once, and the pipeline then processes it', async () => {
    // An attachment.analyzed arrives before its email is in this database (a restore, a lagging
    // replica): the Drive consumer retries, then parks it with DRIVE.ATTACHMENT_UNKNOWN.
    const emailId = randomUUID();
    const attachmentId = randomUUID();
    const bytes = pdf(`late ${emailId}`);
    const { sha256, size } = await createMysqlBlobStore(app.database.db).put(bytes);
    const analyzed = createEvent(
      'attachment.analyzed',
      {
        attachmentId,
        emailId,
        sha256,
        verdict: 'accepted',
        reason: 'PDF document, as declared',
        detectedType: 'application/pdf',
        image: null,
        thumbnailSha256: null,
      },
      { correlationId: emailId },
    );
    const publish = (e: typeof analyzed) =>
      app.broker.publish(
        names.exchange(namespace, contracts['attachment.analyzed'].exchange),
        e.type,
        Buffer.from(JSON.stringify(e)),
        { messageId: e.id, contentType: 'application/json' },
      );
    await publish(analyzed);
    const parked = await waitFor(
      async () => {
        const r = await api('/dead-letters', '/api/v1/dead-letters');
        return (r.body.items as { eventId: string }[]).find((d) => d.eventId === analyzed.id);
      },
      15_000,
      'parked',
    );
    expect(parked).toMatchObject({
      consumer: 'drive-upload',
      queue: 'drive-upload',
      eventType: 'attachment.analyzed',
      correlationId: emailId,
      attempts: 3,
      replayedAt: null,
    });
    expect((parked as unknown as { reason: string }).reason).toContain('DRIVE.ATTACHMENT_UNKNOWN');

    // Now the email's rows exist; put the message back.
    const now = new Date();
    await t.db
      .insertInto('emails')
      .values({
        id: emailId,
        message_id: `${emailId}@late.example`,
        message_id_hash: messageIdHash(`${emailId}@late.example`),
        source: 'imap',
        subject: 'late',
        from_address: 'late@example.com',
        received_at: now,
        status: 'processing',
        warnings: '[]',
        size: size + 500,
        attachment_count: 1,
        mailbox: null,
        uid: null,
        uid_validity: null,
        imap_after_at: now,
        chat_id: null,
        created_at: now,
        done_at: null,
      })
      .execute();
    await t.db
      .insertInto('attachments')
      .values({
        id: attachmentId,
        email_id: emailId,
        parent_id: null,
        seq: 0,
        filename: 'late.pdf',
        original_filename: 'late.pdf',
        size,
        sha256,
        stored: 1,
        declared_type: 'application/pdf',
        detected_type: 'application/pdf',
        disposition: 'attachment',
        content_id: null,
        verdict: 'accepted',
        reason: 'PDF document, as declared',
        image_width: null,
        image_height: null,
        image_format: null,
        image_orientation: null,
        thumbnail_sha256: null,
        analyzed_at: now,
        drive_status: 'pending',
        drive_file_id: null,
        drive_link: null,
        drive_folder: null,
        uploaded_at: null,
        created_at: now,
      })
      .execute();
    const id = (parked as unknown as { id: string }).id;
    const replay = await api(`/dead-letters/${id}/replay`, '/api/v1/dead-letters/{id}/replay', {
      method: 'POST',
    });
    expect(replay.status).toBe(202);
    expect(replay.body).toMatchObject({
      id,
      outcome: 'requeued',
      consumer: 'drive-upload',
      queue: names.queue(namespace, 'drive-upload'),
      eventId: analyzed.id,
    });

    await waitFor(
      async () => (await api(`/emails/${emailId}`)).body.status === 'done',
      15_000,
      'replayed email done',
    );
    const email = (await api(`/emails/${emailId}`, '/api/v1/emails/{id}')).body;
    expect(email.attachments[0]).toMatchObject({ id: attachmentId, drive: { status: 'uploaded' } });
    expect(
      (email.timeline as { stage: string; event: string }[]).map((e) => `${e.stage}:${e.event}`),
    ).toEqual(['dead-letter:dead-letter.replayed', 'drive:attachment.uploaded', 'drive:email.processed']);

    // Replayed once: a second replay is refused, the list moves it to state=all.
    expect(
      await api(`/dead-letters/${id}/replay`, '/api/v1/dead-letters/{id}/replay', { method: 'POST' }),
    ).toMatchObject({
      status: 409,
      body: { error: { code: 'DEAD_LETTER.ALREADY_REPLAYED' } },
    });
    expect(
      (
        await api(`/dead-letters/${randomUUID()}/replay`, '/api/v1/dead-letters/{id}/replay', {
          method: 'POST',
        })
      ).body.error.code,
    ).toBe('DEAD_LETTER.NOT_FOUND');
    expect(((await api('/dead-letters')).body.items as { id: string }[]).map((d) => d.id)).not.toContain(id);
    const all = (await api('/dead-letters?state=all', '/api/v1/dead-letters')).body.items as {
      id: string;
      replayedAt: string;
    }[];
    expect(all.find((d) => d.id === id)?.replayedAt).toEqual(expect.any(String));
  });

  it('replays a dead letter once when two replays race, and pages dead letters', async () => {
    const orphan = () =>
      createEvent(
        'attachment.analyzed',
        {
          attachmentId: randomUUID(),
          emailId: randomUUID(),
          sha256: 'b'.repeat(64),
          verdict: 'accepted',
          reason: 'x',
          detectedType: null,
          image: null,
          thumbnailSha256: null,
        },
        { correlationId: randomUUID() },
      );
    const events = [orphan(), orphan()];
    for (const e of events)
      await app.broker.publish(names.exchange(namespace, 'mail'), e.type, Buffer.from(JSON.stringify(e)), {
        messageId: e.id,
      });
    const parked = await waitFor(
      async () => {
        const items = (await api('/dead-letters?limit=100')).body.items as { id: string; eventId: string }[];
        const mine = items.filter((d) => events.some((e) => e.id === d.eventId));
        return mine.length === 2 ? mine : null;
      },
      15_000,
      'two parked',
    );

    const first = await api('/dead-letters?limit=1', '/api/v1/dead-letters');
    expect(first.body.items).toHaveLength(1);
    const second = await api(`/dead-letters?limit=1&cursor=${first.body.nextCursor}`, '/api/v1/dead-letters');
    expect(second.body.items).toHaveLength(1);
    expect(second.body.items[0].id).not.toBe(first.body.items[0].id);
    expect((await api(`/dead-letters?limit=1&state=all&cursor=${first.body.nextCursor}`)).status).toBe(400);

    const target = parked[0]!.id;
    const results = await Promise.all(
      [1, 2, 3].map(() => api(`/dead-letters/${target}/replay`, undefined, { method: 'POST' })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([202, 409, 409]);
    // Still unknown: after its retries it is parked again, replayable again.
    await waitFor(
      async () => {
        const items = (await api('/dead-letters')).body.items as { id: string; replayedAt: string | null }[];
        return items.some((d) => d.id === target && d.replayedAt === null);
      },
      15_000,
      'parked again',
    );
  });

  it('refuses request bodies over the limit with 413 JSON', async () => {
    const r = await api(`/dead-letters/${randomUUID()}/replay`, undefined, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ pad: 'x'.repeat(64 * 1024) }),
    });
    expect(r).toMatchObject({ status: 413, body: { error: { code: 'PAYLOAD_TOO_LARGE' } } });
  });
});
