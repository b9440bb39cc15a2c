import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMysqlBlobStore } from '../../infra/blobs/mysql-blob-store.js';
import { createEvent } from '../../infra/broker/events.js';
import { enqueueEvents, signalOutbox } from '../../infra/broker/outbox.js';
import { postroomTopology } from '../../infra/broker/subscriptions.js';
import { loadConfig } from '../../infra/config.js';
import { runRetentionPass } from '../../infra/retention/retention-pass.js';
import { startPostroom, type Postroom } from '../../main.js';
import { deleteTestTopology, testLogger, testNamespace, waitFor } from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { TEST_AMQP_URL } from '../../test/env.js';
import { FakeTelegram } from '../../test/fake-telegram.js';
import { pdf, windowsExe } from '../../test/file-fixtures.js';
import { recordTestEmail, waitForDone } from '../../test/recorded-mail.js';
import {
  postUpdate,
  telegramStarters,
  TEST_BOT_TOKEN,
  TEST_WEBHOOK_SECRET,
  updates,
  type FixtureChat,
} from '../../test/telegram-fixtures.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function spread(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 13 + (i >> 10)) & 0xff;
  return b;
}

describe('Telegram: files back, by /get and by the button under a notification', () => {
  let t: TestDatabase;
  let fake: FakeTelegram;
  let app: Postroom;
  let storage: string;
  const namespace = testNamespace('tgfiles');
  const ana: FixtureChat = { id: 2001, username: 'ana' };
  const bo: FixtureChat = { id: 2002, username: 'bo' };
  const cy: FixtureChat = { id: 2003, username: 'cy' };
  const invoice = pdf('Invoice 11');
  const big = spread(2 * 1024 * 1024 + 333);
  let ids: Record<'invoice' | 'big' | 'exe' | 'huge', string>;

  const send = async (update: { update_id: number }) => {
    const res = await postUpdate(app.port, update);
    expect(res.status).toBe(200);
  };
  /** Sends an update and waits until the chat got `n` more messages and documents in all. */
  const ask = async (chat: FixtureChat, update: { update_id: number }, n = 1) => {
    const before = fake.messagesTo(chat.id).length + fake.documentsTo(chat.id).length;
    await send(update);
    await waitFor(
      () => fake.messagesTo(chat.id).length + fake.documentsTo(chat.id).length >= before + n,
      30_000,
      `answer in chat ${chat.id}`,
    );
  };

  beforeAll(async () => {
    t = await createTestDatabase('tgfiles');
    storage = await mkdtemp(join(tmpdir(), 'postroom-tgfiles-'));
    fake = await new FakeTelegram(TEST_BOT_TOKEN).start();
    const config = loadConfig({
      AMQP_URL: TEST_AMQP_URL,
      MYSQL_URL: t.url,
      ROLES: 'telegram,analysis,drive,notify',
      TELEGRAM_BOT_TOKEN: TEST_BOT_TOKEN,
      TELEGRAM_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
      TELEGRAM_API_URL: fake.apiRoot,
      STORAGE_DIR: storage,
      LOG_LEVEL: 'silent',
    });
    app = await startPostroom(config, {
      log: testLogger(),
      namespace,
      httpPort: 0,
      starters: telegramStarters(),
      retryDelaysMs: [100, 200],
    });
    await app.broker.waitConnected();
    await ask(ana, updates.text(ana, '/start'));
    const mail = await recordTestEmail(t.db, createMysqlBlobStore(t.db), {
      subject: 'Papers',
      files: [
        { name: 'invoice.pdf', type: 'application/pdf', bytes: invoice },
        { name: 'Übersicht.bin', type: 'application/octet-stream', bytes: big },
        { name: 'report.pdf', type: 'application/pdf', bytes: windowsExe() },
        { name: 'scan.pdf', type: 'application/pdf', bytes: pdf('Scan') },
      ],
    });
    const [a, b, c, d] = mail.attachments.map((x) => x.id);
    ids = { invoice: a!, big: b!, exe: c!, huge: d! };
    await waitForDone(t.db, mail.emailId);
    await waitFor(() => fake.messagesTo(ana.id).length >= 2, 30_000, 'notification');
  });
  afterAll(async () => {
    await app?.stop();
    await fake?.close();
    await deleteTestTopology(postroomTopology({ namespace }));
    await t?.drop();
    if (storage) await rm(storage, { recursive: true, force: true });
  });

  it('puts a button under the notification for each accepted attachment, none for the quarantined one', () => {
    const note = fake.messagesTo(ana.id).at(-1)!;
    expect(note.text).toContain('Papers');
    const data = note.buttons.flat().map((b) => b.callbackData);
    expect(data).toEqual([`get:${ids.invoice}`, `get:${ids.big}`, `get:${ids.huge}`]);
  });

  it('sends the file as a document when the button is pressed, and answers the query once', async () => {
    const note = fake.messagesTo(ana.id).at(-1)!;
    const queryId = fake.newCallbackQueryId();
    const documentsBefore = fake.documentsTo(ana.id).length;
    await send(updates.callback(ana, `get:${ids.invoice}`, note.messageId, queryId));
    // The document itself, not just any answer: a late message to the chat must not stand in for it.
    const doc = await waitFor(
      () => fake.documentsTo(ana.id)[documentsBefore],
      30_000,
      'the document in the chat',
    );
    expect(doc!.filename).toBe('invoice.pdf');
    expect(doc!.contentType).toBe('application/pdf');
    expect(doc!.bytes!.equals(invoice)).toBe(true);
    await waitFor(() => fake.answers.find((a) => a.id === queryId), 10_000, 'callback answer');
    expect(fake.answers.filter((a) => a.id === queryId)).toHaveLength(1);
  });

  it('sends a file once when its update is delivered again', async () => {
    const update = updates.text(ana, `/get ${ids.big}`);
    await ask(ana, update);
    const sent = () => fake.documentsTo(ana.id).filter((d) => d.filename === 'Übersicht.bin');
    expect(sent()).toHaveLength(1);
    expect(sha(sent()[0]!.bytes!)).toBe(sha(big));
    // The same update once more, as a redelivery would bring it (a new event, the same update_id).
    await t.db
      .transaction()
      .execute((trx) =>
        enqueueEvents(trx, [
          createEvent(
            'telegram.update',
            { updateId: update.update_id, update },
            { correlationId: 'redelivery', causationId: null },
          ),
        ]),
      );
    signalOutbox();
    await waitFor(
      async () =>
        (await t.db.selectFrom('inbox').select('event_id').where('consumer', '=', 'telegram-bot').execute())
          .length >= 4,
      10_000,
      'redelivered update handled',
    );
    // A later command proves the redelivery was handled before it (updates of a chat go in order).
    await ask(ana, updates.text(ana, '/help'));
    expect(sent()).toHaveLength(1);
  });

  it('never sends a quarantined file, nor to a chat that is not subscribed or was not told', async () => {
    const docs = () => fake.documents.length;
    const before = docs();
    await ask(ana, updates.text(ana, `/get ${ids.exe}`));
    expect(fake.messagesTo(ana.id).at(-1)!.text).toContain('quarantined');
    await ask(bo, updates.text(bo, `/get ${ids.invoice}`));
    expect(fake.messagesTo(bo.id).at(-1)!.text).toContain('/start');
    // Cy subscribes after the email was announced: it was never told about it.
    await ask(cy, updates.text(cy, '/start'));
    await ask(cy, updates.text(cy, `/get ${ids.invoice}`));
    expect(fake.messagesTo(cy.id).at(-1)!.text).toContain('No attachment');
    expect(docs()).toBe(before);
  });

  it('sends the Drive link instead of a file over 50 MB', async () => {
    // Only the recorded size decides: a real 50 MB file would not make this test faster to read.
    await t.db.updateTable('attachments').set({ size: 60_000_000 }).where('id', '=', ids.huge).execute();
    const before = fake.documents.length;
    await ask(ana, updates.text(ana, `/get ${ids.huge}`));
    const answer = fake.messagesTo(ana.id).at(-1)!;
    expect(answer.text).toContain('50 MB');
    const { drive_link } = await t.db
      .selectFrom('attachments')
      .select('drive_link')
      .where('id', '=', ids.huge)
      .executeTakeFirstOrThrow();
    expect(drive_link).toMatch(/^file:\/\//); // filed locally here; a Drive link becomes an <a href>
    expect(answer.text).toContain(drive_link);
    expect(fake.documents.length).toBe(before);
  });

  it('sends from STORAGE_DIR once retention dropped the bytes from MySQL', async () => {
    const r = await runRetentionPass({
      db: t.db,
      log: testLogger(),
      retentionDays: 1,
      now: new Date(Date.now() + 2 * 86_400_000),
    });
    expect(r.dropped).toBeGreaterThanOrEqual(2);
    const before = fake.documentsTo(ana.id).length;
    await ask(ana, updates.text(ana, `/get ${ids.big}`));
    const doc = fake.documentsTo(ana.id)[before]!;
    expect(sha(doc.bytes!)).toBe(sha(big));
  });
});
