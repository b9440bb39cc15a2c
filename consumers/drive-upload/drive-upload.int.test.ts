import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consumedTotal } from '../../infra/metrics.js';
import { createMysqlBlobStore } from '../../infra/blobs/mysql-blob-store.js';
import { contracts, type AnyEvent, type EmailProcessedV1 } from '../../contracts/index.js';
import type { Broker } from '../../infra/broker/connection.js';
import { startConsumer, type RunningConsumer } from '../../infra/broker/consume.js';
import { createEvent } from '../../infra/broker/events.js';
import { enqueueEvents, signalOutbox } from '../../infra/broker/outbox.js';
import { startOutboxRelay, type OutboxRelay } from '../../infra/broker/outbox-relay.js';
import { postroomTopology } from '../../infra/broker/subscriptions.js';
import { names, type Topology } from '../../infra/broker/topology.js';
import { recordEmail } from '../../infra/db/repositories/emails.repository.js';
import {
  deleteTestTopology,
  emailReceivedEvent,
  startTestBroker,
  testLogger,
  testNamespace,
  waitFor,
} from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { TEST_AMQP_URL } from '../../test/env.js';
import { FakeDrive, FOLDER_MIME, guardEgress } from '../../test/fake-drive.js';
import { sha256, SMALL_PDF } from '../../test/mail-corpus.js';
import { startTcpProxy } from '../../test/tcp-proxy.js';
import { createDriveAuth } from '../../infra/drive/drive-auth.js';
import { DriveFileStore } from '../../infra/drive/drive-file-store.js';
import { LocalFileStore } from '../../infra/drive/local-file-store.js';
import { createDriveUploadHandler } from './drive-upload.handler.js';
import { fileOnce } from './file-once.js';
import type { FileStore } from '../../infra/drive/file-store.js';
import type { BlobStore } from '../../infra/blobs/blob-store.js';

const log = testLogger();

describe('drive-upload consumer', () => {
  let t: TestDatabase;
  let fake: FakeDrive;
  let egress: ReturnType<typeof guardEgress>;
  let topology: Topology;
  let broker: Broker;
  let relay: OutboxRelay;
  const running: RunningConsumer[] = [];

  beforeAll(async () => {
    egress = guardEgress();
    fake = await FakeDrive.start();
    t = await createTestDatabase('driveupload');
    // The Drive queue as every process declares it.
    topology = postroomTopology({
      namespace: testNamespace('drive'),
      consumers: ['drive-upload'],
      retryDelaysMs: [100, 200],
      deliveryLimit: 5,
    });
    broker = await startTestBroker(topology);
    relay = startOutboxRelay({ broker, db: t.db, log, pollMs: 200 });
  });
  afterAll(async () => {
    for (const c of running) await c.stop();
    await relay?.stop();
    await broker?.close();
    if (topology) await deleteTestTopology(topology);
    await t?.drop();
    await fake?.close();
    expect(egress.blocked).toEqual([]);
    egress?.dispose();
  });

  const newStore = async (): Promise<FileStore> =>
    new DriveFileStore({
      auth: await createDriveAuth({ driveMode: 'access-token', DRIVE_ACCESS_TOKEN: 'fake-drive-token' }),
      db: t.db,
      rootUrl: fake.url,
      retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 50 },
    });

  /** Records an email with one attachment (as the poller would) and publishes its analysis verdict. */
  async function emailWithAnalyzedAttachment(opts: {
    from: string;
    bytes: Buffer;
    verdict: 'accepted' | 'quarantined';
  }) {
    const { emailId, attachmentIds, events } = await emailWithAnalyzedAttachments({
      from: opts.from,
      files: [opts.bytes],
      verdict: opts.verdict,
    });
    await publish(events);
    return { emailId, attachmentId: attachmentIds[0]! };
  }

  /** Records an email with attachments of these bytes, analysed; returns their `attachment.analyzed` events. */
  async function emailWithAnalyzedAttachments(opts: {
    from: string;
    files: Buffer[];
    verdict: 'accepted' | 'quarantined';
  }) {
    const blobs = createMysqlBlobStore(t.db);
    const stored = await Promise.all(opts.files.map((bytes) => blobs.put(bytes)));
    const attachmentIds: string[] = opts.files.map(() => randomUUID());
    const { emailId } = await recordEmail(t.db, {
      source: 'imap',
      mailbox: 'INBOX',
      uid: 1,
      uidValidity: '1',
      receivedAt: new Date('2026-11-26T10:00:00Z'),
      parsed: {
        messageId: `${randomUUID()}@test`,
        subject: 'Invoice',
        from: opts.from,
        size: 1000,
        warnings: [],
        attachments: stored.map((b, i) => ({
          id: attachmentIds[i]!,
          parentId: null,
          filename: opts.files.length === 1 ? 'invoice.pdf' : `invoice-${i + 1}.pdf`,
          originalFilename: opts.files.length === 1 ? 'invoice.pdf' : `invoice-${i + 1}.pdf`,
          declaredType: 'application/pdf',
          disposition: 'attachment' as const,
          contentId: null,
          size: b.size,
          sha256: b.sha256,
          stored: true,
        })),
      },
    });
    await t.db
      .updateTable('attachments')
      .set({ verdict: opts.verdict, reason: 'test verdict' })
      .where('email_id', '=', emailId)
      .execute();
    const events = stored.map((b, i) =>
      createEvent(
        'attachment.analyzed',
        {
          attachmentId: attachmentIds[i]!,
          emailId,
          sha256: b.sha256,
          verdict: opts.verdict,
          reason: 'test verdict',
          detectedType: 'application/pdf',
          image: null,
          thumbnailSha256: null,
        },
        { correlationId: emailId },
      ),
    );
    return { emailId, attachmentIds, events };
  }

  /** Publishes events through the outbox, as a consumer's commit would. */
  async function publish(events: AnyEvent[]) {
    await t.db.transaction().execute((trx) => enqueueEvents(trx, events));
    signalOutbox();
  }

  const attachment = (id: string) =>
    t.db.selectFrom('attachments').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const uploadedFiles = () => fake.files().filter((f) => f.mimeType !== FOLDER_MIME);
  const processedEvents = async (emailId: string) =>
    (
      await t.db.selectFrom('outbox').select('body').where('routing_key', '=', 'email.processed').execute()
    ).filter((r) => (JSON.parse(r.body) as { data: { emailId: string } }).data.emailId === emailId);

  /** A broker connection through a TCP proxy: `proxy.pause()` makes it vanish, as a killed process's does. */
  async function brokerThatCanVanish() {
    const proxy = await startTcpProxy(
      new URL(TEST_AMQP_URL).hostname,
      Number(new URL(TEST_AMQP_URL).port || 5672),
    );
    const u = new URL(TEST_AMQP_URL);
    u.host = `127.0.0.1:${proxy.port}`;
    return { proxy, doomedBroker: await startTestBroker(topology, u.toString()) };
  }

  /** `real` with another upload: a process that dies around its uploads. */
  const withUpload = (real: FileStore, upload: FileStore['upload']): FileStore => ({
    backend: real.backend,
    rootFolderId: real.rootFolderId,
    ensureFolder: (p) => real.ensureFolder(p),
    reserveFileId: () => real.reserveFileId(),
    findBySha256: (f, s) => real.findBySha256(f, s),
    openFile: (id, range) => real.openFile(id, range),
    ...(real.fileIdFor ? { fileIdFor: (key: string) => real.fileIdFor!(key) } : {}),
    upload,
  });

  /** Starts the consumer of the process about to die, on the broker connection that can vanish. */
  const startDoomed = (store: FileStore, doomedBroker: Broker) =>
    startConsumer(
      createDriveUploadHandler({
        store,
        blobs: createMysqlBlobStore(t.db),
        folderTemplate: '{yyyy}/{mm}/{from}',
      }),
      { broker: doomedBroker, db: t.db, log },
    );

  /** Starts the replacement process's consumer, and waits until it made the attachment final. */
  async function replacementFiles(store: FileStore, blobs: BlobStore, attachmentId: string) {
    running.push(
      await startConsumer(createDriveUploadHandler({ store, blobs, folderTemplate: '{yyyy}/{mm}/{from}' }), {
        broker,
        db: t.db,
        log,
      }),
    );
    return waitFor(
      async () => {
        const a = await attachment(attachmentId);
        return a.drive_status === 'pending' ? null : a;
      },
      20_000,
      'filed by the replacement',
    );
  }

  it('uploads nothing twice when the consumer dies after the upload and before the ack', async () => {
    const { proxy, doomedBroker } = await brokerThatCanVanish();
    const real = await newStore();
    let uploads = 0;
    // This "process" uploads, then dies: its broker connection vanishes and it never commits or acks
    // (the thrown error stands for the end of the process: its database session ends with it).
    const dying = withUpload(real, async (req) => {
      await real.upload(req);
      uploads += 1;
      proxy.pause();
      throw new Error('process killed after the upload');
    });
    const blobs = createMysqlBlobStore(t.db);
    const doomed = await startDoomed(dying, doomedBroker);
    const bytes = Buffer.concat([SMALL_PDF, randomBytes(64)]);
    const { emailId, attachmentId } = await emailWithAnalyzedAttachment({
      from: 'ana@example.com',
      bytes,
      verdict: 'accepted',
    });
    await waitFor(() => uploads === 1, 15_000, 'first upload');
    expect(uploadedFiles().filter((f) => f.appProperties?.['attachmentId'] === attachmentId)).toHaveLength(1);

    // The replacement process takes the redelivered message.
    const row = await replacementFiles(await newStore(), blobs, attachmentId);
    expect(row.drive_status).toBe('uploaded');
    const files = uploadedFiles().filter((f) => f.appProperties?.['attachmentId'] === attachmentId);
    expect(files).toHaveLength(1);
    expect(row.drive_file_id).toBe(files[0]!.id);
    expect(fake.content(files[0]!.id).equals(bytes)).toBe(true);
    expect(row.drive_folder).toBe('2026/11/ana@example.com');
    await waitFor(async () => (await processedEvents(emailId)).length === 1, 10_000, 'email.processed');
    const email = await t.db
      .selectFrom('emails')
      .select('status')
      .where('id', '=', emailId)
      .executeTakeFirstOrThrow();
    expect(email.status).toBe('done');

    await doomed.stop().catch(() => undefined);
    await doomedBroker.close();
    await proxy.close();
  });

  it('files a burst exactly once when the consumer dies in the middle of it and one message comes twice', async () => {
    for (const c of running.splice(0)) await c.stop(); // the dying consumer alone takes the burst
    const { proxy, doomedBroker } = await brokerThatCanVanish();
    const real = await newStore();
    const pdf = () => Buffer.concat([SMALL_PDF, randomBytes(64)]);
    const [a, b, c] = [pdf(), pdf(), pdf()];
    // One folder for cy (E1: a, b and b again; E2: a again, files already there are linked), one for dee.
    const e1 = await emailWithAnalyzedAttachments({
      from: 'cy@example.com',
      files: [a, b, b],
      verdict: 'accepted',
    });
    const e2 = await emailWithAnalyzedAttachments({
      from: 'cy@example.com',
      files: [a],
      verdict: 'accepted',
    });
    const e3 = await emailWithAnalyzedAttachments({
      from: 'dee@example.com',
      files: [c],
      verdict: 'accepted',
    });
    const all = [...e1.events, ...e2.events, ...e3.events];
    // This "process" takes the whole burst and dies right after its second upload: that one and the
    // uploads still running are never committed or acked (its broker connection vanishes).
    let uploads = 0;
    let dead = false;
    const dying = withUpload(real, async (req) => {
      if (dead) throw new Error('process killed');
      const r = await real.upload(req);
      uploads += 1;
      if (uploads < 2) return r;
      dead = true;
      proxy.pause();
      throw new Error('process killed after the upload');
    });
    const blobs = createMysqlBlobStore(t.db);
    const doomed = await startDoomed(dying, doomedBroker);
    await publish(all);
    // ... and one event comes twice (a relay that published a batch again after a crash).
    const again = e3.events[0]!;
    await broker.publish(
      names.exchange(topology.namespace, contracts['attachment.analyzed'].exchange),
      again.type,
      Buffer.from(JSON.stringify(again)),
      { messageId: again.id, persistent: true, contentType: 'application/json' },
    );
    await waitFor(() => dead, 15_000, 'the second upload, and the end');

    // The replacement process takes everything redelivered.
    running.push(
      await startConsumer(
        createDriveUploadHandler({ store: await newStore(), blobs, folderTemplate: '{yyyy}/{mm}/{from}' }),
        { broker, db: t.db, log },
      ),
    );
    const ids: string[] = [...e1.attachmentIds, ...e2.attachmentIds, ...e3.attachmentIds];
    const rows = await waitFor(
      async () => {
        const r = await t.db.selectFrom('attachments').selectAll().where('id', 'in', ids).execute();
        return r.every((x) => x.drive_status !== 'pending') ? r : null;
      },
      30_000,
      'every attachment final',
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    // One file per folder and bytes: a and b for cy, c for dee; the copies are linked to them.
    const files = uploadedFiles().filter((f) => ids.includes(f.appProperties?.['attachmentId'] ?? ''));
    expect(files.map((f) => f.appProperties?.['sha256']).sort()).toEqual([a, b, c].map(sha256).sort());
    const fileOf = (bytes: Buffer) => files.find((f) => f.appProperties?.['sha256'] === sha256(bytes))!.id;
    expect(ids.map((id) => byId.get(id)!.drive_file_id)).toEqual([
      fileOf(a),
      fileOf(b),
      fileOf(b),
      fileOf(a),
      fileOf(c),
    ]);
    expect(ids.map((id) => byId.get(id)!.drive_status).filter((st) => st === 'uploaded')).toHaveLength(3);
    // Each email closed once, listing all its attachments; each filed attachment announced once.
    for (const e of [e1, e2, e3]) {
      await waitFor(async () => (await processedEvents(e.emailId)).length === 1, 10_000, 'email.processed');
      const [processed] = await processedEvents(e.emailId);
      const data = (JSON.parse(processed!.body) as EmailProcessedV1).data;
      expect(data.attachments.map((x) => x.attachmentId)).toEqual(e.attachmentIds);
    }
    const announced = (
      await t.db
        .selectFrom('outbox')
        .select('body')
        .where('routing_key', '=', 'attachment.uploaded')
        .execute()
    )
      .map((r) => (JSON.parse(r.body) as { data: { attachmentId: string } }).data.attachmentId)
      .filter((id) => ids.includes(id));
    expect(announced.sort()).toEqual([...ids].sort());

    await doomed.stop().catch(() => undefined);
    await doomedBroker.close();
    await proxy.close();
  });

  it('tells an earlier attempt at the same file from another file with the same bytes, whatever the row it read', async () => {
    const store = await newStore();
    const folderId = await store.ensureFolder(['stale-reads']);
    const bytes = randomBytes(200);
    let stored: string | null = null;
    const attempt = (idKey: string, reserved: { get: () => string | null; set: (id: string) => void }) =>
      fileOnce({
        store,
        db: t.db,
        folderId,
        folder: 'stale-reads',
        sha256: sha256(bytes),
        size: bytes.length,
        open: async () => Readable.from([bytes]),
        name: 'same.bin',
        mimeType: 'application/octet-stream',
        appProperties: {},
        idKey,
        // As a delivery reads its row: before the first attempt stored its reservation.
        reservedFileId: null,
        saveReservedId: async (id) => reserved.set(id),
        readReservedId: async () => reserved.get(),
      });
    const mine = { get: () => stored, set: (id: string) => void (stored = id) };
    const first = await attempt('attachment:stale-1', mine);
    expect(first.status).toBe('uploaded');
    // The same event delivered twice in one burst: the second delivery read the row too early.
    const again = await attempt('attachment:stale-1', mine);
    expect(again).toMatchObject({ status: 'uploaded', file: { fileId: first.file!.fileId } });
    // Another attachment with these bytes is linked to that file.
    const other = await attempt('attachment:stale-2', { get: () => null, set: () => undefined });
    expect(other).toMatchObject({ status: 'skipped', file: { fileId: first.file!.fileId } });
    expect(uploadedFiles().filter((f) => f.appProperties?.['sha256'] === sha256(bytes))).toHaveLength(1);
  });

  it('links identical bytes already filed in the same folder instead of uploading them again', async () => {
    const bytes = Buffer.concat([SMALL_PDF, randomBytes(64)]);
    const first = await emailWithAnalyzedAttachment({ from: 'bo@example.com', bytes, verdict: 'accepted' });
    const a1 = await waitFor(
      async () => {
        const a = await attachment(first.attachmentId);
        return a.drive_status === 'uploaded' ? a : null;
      },
      15_000,
      'first uploaded',
    );
    const second = await emailWithAnalyzedAttachment({ from: 'bo@example.com', bytes, verdict: 'accepted' });
    const a2 = await waitFor(
      async () => {
        const a = await attachment(second.attachmentId);
        return a.drive_status !== 'pending' ? a : null;
      },
      15_000,
      'second final',
    );
    expect(a2.drive_status).toBe('skipped');
    expect(a2.drive_file_id).toBe(a1.drive_file_id);
    expect(a2.drive_link).toBe(a1.drive_link);
    expect(uploadedFiles().filter((f) => f.appProperties?.['sha256'] === sha256(bytes))).toHaveLength(1);
  });

  it('makes a folder deleted by hand in Drive again instead of failing every upload into it', async () => {
    const uploaded = async (attachmentId: string) =>
      waitFor(
        async () => {
          const a = await attachment(attachmentId);
          return a.drive_status !== 'pending' ? a : null;
        },
        15_000,
        'filed',
      );
    const first = await uploaded(
      (
        await emailWithAnalyzedAttachment({
          from: 'dee@example.com',
          bytes: randomBytes(80),
          verdict: 'accepted',
        })
      ).attachmentId,
    );
    expect(first.drive_status).toBe('uploaded');
    const leaf = fake.file(first.drive_file_id!)!.parents[0]!;
    const month = fake.file(leaf)!.parents[0]!;
    // Someone deletes the month folder, and the sender's folder in it, while the consumer has them cached.
    fake.deleteFile(month);
    expect(fake.file(leaf)).toBeUndefined();

    const second = await uploaded(
      (
        await emailWithAnalyzedAttachment({
          from: 'dee@example.com',
          bytes: randomBytes(80),
          verdict: 'accepted',
        })
      ).attachmentId,
    );
    expect(second).toMatchObject({ drive_status: 'uploaded', drive_folder: '2026/11/dee@example.com' });
    const newLeaf = fake.file(second.drive_file_id!)!.parents[0]!;
    expect(newLeaf).not.toBe(leaf);
    expect(fake.file(newLeaf)).toMatchObject({ name: 'dee@example.com', mimeType: FOLDER_MIME });
    const newMonth = fake.file(newLeaf)!.parents[0]!;
    expect(fake.file(newMonth)).toMatchObject({ name: '11', mimeType: FOLDER_MIME });
    expect(fake.file(fake.file(newMonth)!.parents[0]!)?.name).toBe('2026');
    // The next upload goes straight into the new folder.
    const third = await uploaded(
      (
        await emailWithAnalyzedAttachment({
          from: 'dee@example.com',
          bytes: randomBytes(80),
          verdict: 'accepted',
        })
      ).attachmentId,
    );
    expect(fake.file(third.drive_file_id!)!.parents).toEqual([newLeaf]);
  });

  it('files nothing for a quarantined attachment and still closes the email', async () => {
    const before = uploadedFiles().length;
    const { emailId, attachmentId } = await emailWithAnalyzedAttachment({
      from: 'cy@example.com',
      bytes: randomBytes(100),
      verdict: 'quarantined',
    });
    await waitFor(async () => (await processedEvents(emailId)).length === 1, 15_000, 'email.processed');
    const a = await attachment(attachmentId);
    expect(a.drive_status).toBe('not-filed');
    expect(a.drive_file_id).toBeNull();
    expect(uploadedFiles().length).toBe(before);
    const [row] = await processedEvents(emailId);
    expect((JSON.parse(row!.body) as EmailProcessedV1).data.attachments).toEqual([
      expect.objectContaining({ attachmentId, verdict: 'quarantined', driveStatus: 'not-filed', link: null }),
    ]);
  });

  it('closes an attachmentless email an earlier release recorded and left open', async () => {
    // Recorded as that release did: no attachments, still processing, its email.received in the outbox.
    const emailId = randomUUID();
    await t.db
      .insertInto('emails')
      .values({
        id: emailId,
        message_id: `${emailId}@test`,
        message_id_hash: randomBytes(32).toString('hex'),
        source: 'imap',
        subject: 'no files',
        from_address: 'di@example.com',
        received_at: new Date(),
        status: 'processing',
        warnings: '[]',
        size: 10,
        attachment_count: 0,
        mailbox: null,
        uid: null,
        uid_validity: null,
        imap_after_at: null,
        chat_id: null,
        created_at: new Date(),
        done_at: null,
      })
      .execute();
    const received = emailReceivedEvent({ emailId, subject: 'no files', from: 'di@example.com' });
    await t.db.transaction().execute((trx) => enqueueEvents(trx, [received]));
    signalOutbox();
    await waitFor(async () => (await processedEvents(emailId)).length === 1, 15_000, 'email.processed');
    const [e] = await processedEvents(emailId);
    expect(JSON.parse(e!.body).data.attachments).toEqual([]);
  });

  it('waits out a Drive outage of a simulated hour: every file uploaded once afterwards, nothing failed or parked', async () => {
    while (running.length) await running.pop()!.stop();
    const hourMs = 2_000;
    running.push(
      await startConsumer(
        createDriveUploadHandler({
          store: await newStore(),
          blobs: createMysqlBlobStore(t.db),
          folderTemplate: '{yyyy}/{mm}/{from}',
          hourMs,
        }),
        { broker, db: t.db, log },
      ),
    );
    const retried = async () =>
      (await consumedTotal.get()).values
        .filter((v) => v.labels['queue'] === 'drive-upload' && v.labels['outcome'] === 'retried')
        .reduce((a, v) => a + v.value, 0);
    const before = await retried();
    fake.failNext({ path: /./, times: 1_000_000, status: 503 });
    const outageEnds = Date.now() + hourMs;
    const sent = [];
    for (let i = 0; i < 3; i++)
      sent.push(
        await emailWithAnalyzedAttachment({
          from: 'outage@example.com',
          bytes: Buffer.concat([SMALL_PDF, randomBytes(64)]),
          verdict: 'accepted',
        }),
      );
    await new Promise((r) => setTimeout(r, Math.max(0, outageEnds - Date.now())));
    const retriesDuringOutage = (await retried()) - before;
    fake.clearFaults();
    for (const { attachmentId } of sent)
      await waitFor(
        async () => (await attachment(attachmentId)).drive_status === 'uploaded',
        20_000,
        'uploaded after the outage',
      );
    // More retries than the two per message (three attempts) after which a file used to fail.
    expect(retriesDuringOutage).toBeGreaterThan(2 * sent.length);
    for (const { emailId, attachmentId } of sent) {
      const files = uploadedFiles().filter((f) => f.appProperties?.['attachmentId'] === attachmentId);
      expect(files).toHaveLength(1);
      expect((await attachment(attachmentId)).drive_file_id).toBe(files[0]!.id);
      await waitFor(async () => (await processedEvents(emailId)).length === 1, 10_000, 'email.processed');
    }
    const parked = await t.db
      .selectFrom('dead_letters')
      .select('id')
      .where('consumer', '=', 'drive-upload')
      .execute();
    expect(parked).toEqual([]);
  });

  it('files once with local storage too, with no id written before the upload', async () => {
    // The Drive consumers of the tests above would take the message: only local ones from here on.
    for (const c of running.splice(0)) await c.stop();
    const dir = await mkdtemp(join(tmpdir(), 'postroom-local-once-'));
    const { proxy, doomedBroker } = await brokerThatCanVanish();
    const real = new LocalFileStore({ dir });
    let uploads = 0;
    let reservedBeforeUpload: string | null = 'not looked';
    // As above: this "process" files the bytes, then dies before it commits or acks.
    const dying = withUpload(real, async (req) => {
      reservedBeforeUpload = (await attachment(String(req.appProperties?.['attachmentId']))).drive_file_id;
      await real.upload(req);
      uploads += 1;
      proxy.pause();
      throw new Error('process killed after the upload');
    });
    const blobs = createMysqlBlobStore(t.db);
    const doomed = await startDoomed(dying, doomedBroker);
    const bytes = Buffer.concat([SMALL_PDF, randomBytes(64)]);
    const { attachmentId } = await emailWithAnalyzedAttachment({
      from: 'local@example.com',
      bytes,
      verdict: 'accepted',
    });
    await waitFor(() => uploads === 1, 15_000, 'first filing');
    expect(reservedBeforeUpload).toBeNull(); // nothing was written to MySQL before the upload

    const row = await replacementFiles(new LocalFileStore({ dir }), blobs, attachmentId);
    // Its own file found again: `uploaded` (not `skipped`), one file on disk, under the derived id.
    expect(row.drive_status).toBe('uploaded');
    expect(row.drive_file_id).toBe(real.fileIdFor(`attachment:${attachmentId}`));
    const folder = join(dir, '2026', '11', 'local@example.com');
    expect(await readdir(folder)).toEqual(['invoice.pdf']);
    expect((await readFile(join(folder, 'invoice.pdf'))).equals(bytes)).toBe(true);

    await doomed.stop().catch(() => undefined);
    await doomedBroker.close();
    await proxy.close();
    await rm(dir, { recursive: true, force: true });
  });
});
