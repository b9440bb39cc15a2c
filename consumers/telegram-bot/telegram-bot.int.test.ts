import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postroomTopology } from '../../infra/broker/subscriptions.js';
import { loadConfig } from '../../infra/config.js';
import { startPostroom, type Postroom } from '../../main.js';
import { deleteTestTopology, testNamespace, waitFor } from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { TEST_AMQP_URL } from '../../test/env.js';
import { FakeTelegram, type FakeSentMessage } from '../../test/fake-telegram.js';
import { pdf, png, windowsExe } from '../../test/file-fixtures.js';
import {
  capturingLogger,
  postUpdate,
  telegramStarters,
  TEST_BOT_TOKEN,
  TEST_WEBHOOK_SECRET,
  updates,
  type FixtureChat,
} from '../../test/telegram-fixtures.js';

describe('Telegram bot: commands and files, through the webhook and the whole pipeline', () => {
  let t: TestDatabase;
  let fake: FakeTelegram;
  let app: Postroom;
  let storage: string;
  const namespace = testNamespace('tgbot');
  const captured = capturingLogger();

  /** Sends an update through the webhook and waits for the bot's next message in that chat. */
  const ask = async (
    chat: FixtureChat,
    update: { update_id: number },
    replies = 1,
  ): Promise<FakeSentMessage[]> => {
    const before = fake.messagesTo(chat.id).length;
    const res = await postUpdate(app.port, update);
    expect(res.status).toBe(200);
    await waitFor(
      () => fake.messagesTo(chat.id).length >= before + replies,
      30_000,
      `reply in chat ${chat.id}`,
    );
    return fake.messagesTo(chat.id).slice(before);
  };
  const chatRow = (id: number) =>
    t.db.selectFrom('telegram_chats').selectAll().where('chat_id', '=', String(id)).executeTakeFirst();
  const emailOf = (chat: number, message: number) =>
    t.db
      .selectFrom('emails')
      .selectAll()
      .where('message_id', '=', `telegram-${chat}-${message}@telegram.postroom`)
      .executeTakeFirst();

  beforeAll(async () => {
    t = await createTestDatabase('tgbot');
    storage = await mkdtemp(join(tmpdir(), 'postroom-tgbot-'));
    fake = await new FakeTelegram(TEST_BOT_TOKEN).start();
    const config = loadConfig({
      AMQP_URL: TEST_AMQP_URL,
      MYSQL_URL: t.url,
      ROLES: 'telegram,analysis,drive,notify',
      TELEGRAM_BOT_TOKEN: TEST_BOT_TOKEN,
      TELEGRAM_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
      TELEGRAM_API_URL: fake.apiRoot,
      STORAGE_DIR: storage,
      DRIVE_FOLDER_TEMPLATE: '{from}',
      LOG_LEVEL: 'debug',
    });
    app = await startPostroom(config, {
      log: captured.log,
      namespace,
      httpPort: 0,
      starters: telegramStarters(),
      retryDelaysMs: [100, 200],
    });
    await app.broker.waitConnected();
  });
  afterAll(async () => {
    await app?.stop();
    await fake?.close();
    await deleteTestTopology(postroomTopology({ namespace }));
    await t?.drop();
    await rm(storage, { recursive: true, force: true });
  });

  it('/start subscribes the chat, in MySQL, and says so; a second /start says it already is', async () => {
    const ana = { id: 1001, username: 'Ana_B' };
    const start = updates.text(ana, '/start');
    const [reply] = await ask(ana, start);
    expect(reply!.text).toContain('Subscribed');
    expect(reply!.parseMode).toBe('HTML');
    expect(reply!.replyTo).toBe(start.message.message_id);
    expect(await chatRow(1001)).toMatchObject({
      subscribed: 1,
      type: 'private',
      username: 'Ana_B',
      first_name: 'Ana',
    });
    const [again] = await ask(ana, updates.text(ana, '/start@postroom_test_bot'));
    expect(again!.text).toContain('already subscribed');
  });

  it('/stop unsubscribes; a late, older /start does not undo it', async () => {
    const bo = { id: 1002 };
    const start = updates.text(bo, '/start');
    const stop = updates.text(bo, '/stop');
    await ask(bo, start);
    const [reply] = await ask(bo, stop);
    expect(reply!.text).toContain('Unsubscribed');
    expect(await chatRow(1002)).toMatchObject({
      subscribed: 0,
      unsubscribed_reason: 'stop',
      state_update_id: stop.update_id,
    });
    // A /start older than the /stop, handled late (updates may be handled out of order): no effect, no answer.
    const handled = async () =>
      Number(
        (
          await t.db
            .selectFrom('inbox')
            .select((e) => e.fn.countAll().as('n'))
            .where('consumer', '=', 'telegram-bot')
            .executeTakeFirstOrThrow()
        ).n,
      );
    const before = await handled();
    const late = { ...updates.text(bo, '/start'), update_id: start.update_id - 100_000 };
    expect((await postUpdate(app.port, late)).status).toBe(200);
    await waitFor(async () => (await handled()) > before, 10_000, 'late /start handled');
    expect(await chatRow(1002)).toMatchObject({ subscribed: 0, state_update_id: stop.update_id });
    expect(fake.messagesTo(1002)).toHaveLength(2);
  });

  it('/help and unknown commands answer with help; chatter in a group and commands for other bots get nothing', async () => {
    const cy = { id: 1003 };
    const [help] = await ask(cy, updates.text(cy, '/help'));
    expect(help!.text).toContain('/status <email id or Message-ID>');
    const [unknown] = await ask(cy, updates.text(cy, '/frobnicate now'));
    expect(unknown!.text).toContain('I do not know /frobnicate');
    expect(unknown!.text).toContain('/recent');
    const [chatter] = await ask(cy, updates.text(cy, 'hello?'));
    expect(chatter!.text).toContain('/start');

    const group = { id: -2001, type: 'group' as const };
    const quiet = [updates.text(group, 'just talking'), updates.text(group, '/help@some_other_bot')];
    for (const u of quiet) expect((await postUpdate(app.port, u)).status).toBe(200);
    await ask(group, updates.text(group, '/help@postroom_test_bot'));
    expect(fake.messagesTo(-2001)).toHaveLength(1);
  });

  it('takes in a document: analysed, filed under STORAGE_DIR, and the bot replies with the outcome', async () => {
    const dee = { id: 1004, username: 'dee' };
    const bytes = pdf('Telegram invoice');
    const file = fake.addFile({ bytes, ext: 'pdf' });
    const update = updates.document(
      dee,
      {
        file_id: file.file_id,
        file_unique_id: file.file_unique_id,
        file_size: bytes.length,
        file_name: 'invoice <2026>.pdf',
        mime_type: 'application/pdf',
      },
      'Invoice & co',
    );
    const [got, outcome] = await ask(dee, update, 2);
    expect(got!.text).toMatch(/^📥 Got invoice <2026>\.pdf/);
    expect(outcome!.text).toContain('Your file is processed');
    // Filed under its safe name (no < > in file names); the HTML went through Telegram's parser.
    expect(outcome!.text).toContain('✅ invoice _2026_.pdf: accepted · filed: file://');
    expect(outcome!.replyTo).toBe(update.message.message_id);

    const email = (await emailOf(1004, update.message.message_id))!;
    expect(email).toMatchObject({
      source: 'telegram',
      chat_id: '1004',
      subject: 'Invoice & co',
      from_address: '@dee',
      status: 'done',
    });
    const [attachment] = await t.db
      .selectFrom('attachments')
      .selectAll()
      .where('email_id', '=', email.id)
      .execute();
    expect(attachment).toMatchObject({
      verdict: 'accepted',
      drive_status: 'uploaded',
      original_filename: 'invoice <2026>.pdf',
    });
    expect(outcome!.text).toContain(attachment!.drive_link!);
    const filed = await readdir(join(storage, '@dee'));
    expect(filed).toHaveLength(1);
    expect(await readFile(join(storage, '@dee', filed[0]!))).toEqual(bytes);
    // The reply reaches the chat before the notifier commits its `sent`: wait for the commit.
    const notifications = await waitFor(
      async () => {
        const rows = await t.db
          .selectFrom('notifications')
          .selectAll()
          .where('email_id', '=', email.id)
          .execute();
        return rows.every((r) => r.status !== 'pending') ? rows : null;
      },
      10_000,
      'the notification recorded as final',
    );
    expect(notifications).toMatchObject([{ chat_id: '1004', status: 'sent', attempts: 1 }]);
    // A file sent to the bot is answered in its chat only: the subscribed chat 1001 is not told.
    expect(fake.messagesTo(1001).some((m) => m.text.includes('invoice _2026_'))).toBe(false);
  });

  it('takes in a photo (its largest size) and reports a quarantined file as such', async () => {
    const eve = { id: 1005 };
    const small = fake.addFile({ bytes: await png(8, 6), ext: 'jpg', dir: 'photos' });
    const large = fake.addFile({ bytes: await png(64, 48), ext: 'jpg', dir: 'photos' });
    const photo = updates.photo(eve, [
      {
        file_id: small.file_id,
        file_unique_id: small.file_unique_id,
        width: 8,
        height: 6,
        file_size: small.file_size,
      },
      {
        file_id: large.file_id,
        file_unique_id: large.file_unique_id,
        width: 64,
        height: 48,
        file_size: large.file_size,
      },
    ]);
    const [, outcome] = await ask(eve, photo, 2);
    expect(outcome!.text).toContain(`photo-${photo.message.message_id}.jpg`);
    expect(outcome!.text).toContain('accepted');
    expect(fake.callsOf('getFile').map((c) => c.params['file_id'])).toContain(large.file_id);
    expect(fake.callsOf('getFile').map((c) => c.params['file_id'])).not.toContain(small.file_id);

    const exe = fake.addFile({ bytes: windowsExe(), ext: 'pdf' });
    const doc = updates.document(eve, {
      file_id: exe.file_id,
      file_unique_id: exe.file_unique_id,
      file_size: exe.file_size,
      file_name: 'report.pdf',
      mime_type: 'application/pdf',
    });
    const [, bad] = await ask(eve, doc, 2);
    expect(bad!.text).toContain('report.pdf');
    expect(bad!.text).toContain('quarantined');
    expect(bad!.text).not.toContain('filed:');
  });

  it('refuses a file over 20 MB with a clear answer, without getFile and without retrying', async () => {
    const fay = { id: 1006 };
    const big = fake.addFile({ size: 25 * 1024 * 1024, ext: 'zip' });
    const getFilesBefore = fake.callsOf('getFile').length;
    const update = updates.document(fay, {
      file_id: big.file_id,
      file_unique_id: big.file_unique_id,
      file_size: big.file_size,
      file_name: 'backup.zip',
    });
    const [reply] = await ask(fay, update);
    expect(reply!.text).toBe(
      '⛔ backup.zip is 25 MB, too large. Bots can take files up to 20 MB; please send a smaller file, or mail it instead.',
    );
    // The size was not declared: getFile says "file is too big", and the answer is the same.
    const undeclared = updates.document(fay, {
      file_id: big.file_id,
      file_unique_id: big.file_unique_id,
      file_name: 'backup2.zip',
    });
    const [second] = await ask(fay, undeclared);
    expect(second!.text).toContain('backup2.zip is too large');
    await new Promise((r) => setTimeout(r, 500));
    expect(fake.messagesTo(1006)).toHaveLength(2);
    expect(fake.callsOf('getFile').length - getFilesBefore).toBe(1);
    expect(await emailOf(1006, update.message.message_id)).toBeUndefined();
    expect(await emailOf(1006, undeclared.message.message_id)).toBeUndefined();
  });

  it('retries a download that failed, and records the file once', async () => {
    const gus = { id: 1007 };
    const bytes = pdf('retry me');
    const file = fake.addFile({ bytes, ext: 'pdf' });
    fake.failDownloads(1, 502);
    const update = updates.document(gus, {
      file_id: file.file_id,
      file_unique_id: file.file_unique_id,
      file_size: bytes.length,
      file_name: 'retry.pdf',
      mime_type: 'application/pdf',
    });
    const [got, outcome] = await ask(gus, update, 2);
    expect(got!.text).toContain('Got retry.pdf');
    expect(outcome!.text).toContain('accepted');
    expect(fake.downloads.filter((d) => d.path === file.file_path).map((d) => d.status)).toEqual([502, 200]);
    const emails = await t.db.selectFrom('emails').select('id').where('chat_id', '=', '1007').execute();
    expect(emails).toHaveLength(1);
  });

  it('/status answers with an email by id or Message-ID; /recent lists the last emails', async () => {
    const dee = { id: 1004 };
    const email = (await t.db
      .selectFrom('emails')
      .selectAll()
      .where('chat_id', '=', '1004')
      .executeTakeFirst())!;
    const [byId] = await ask(dee, updates.text(dee, `/status ${email.id}`));
    for (const part of [
      '📄 Invoice & co',
      'From: @dee',
      'Status: ✅ done',
      'invoice _2026_.pdf (590 B): accepted',
      'filed: file://',
      'Notifications: 1 sent',
      email.id,
    ])
      expect(byId!.text).toContain(part);
    const [byMessageId] = await ask(dee, updates.text(dee, `/status <${email.message_id}>`));
    expect(byMessageId!.text).toBe(byId!.text);
    const [missing] = await ask(dee, updates.text(dee, '/status <nobody@example.com>'));
    expect(missing!.text).toBe('No email with id or Message-ID <nobody@example.com>.');
    const [usage] = await ask(dee, updates.text(dee, '/status'));
    expect(usage!.text).toContain('Usage: /status');

    const [recent] = await ask(dee, updates.text(dee, '/recent'));
    expect(recent!.text).toMatch(/^🕘 Last \d+ emails/);
    expect(recent!.text).toContain('retry.pdf');
    expect(recent!.text).toContain(email.id);
  });

  it('unsubscribes a chat whose user blocked the bot', async () => {
    const hal = { id: 1008 };
    await ask(hal, updates.text(hal, '/start'));
    expect((await postUpdate(app.port, updates.blocked(hal))).status).toBe(200);
    await waitFor(async () => (await chatRow(1008))?.subscribed === 0, 10_000, 'unsubscribed');
    expect(await chatRow(1008)).toMatchObject({ subscribed: 0, unsubscribed_reason: 'blocked' });
  });

  it('never writes the bot token to the logs, not even when a download fails', async () => {
    const all = captured.lines.join('\n');
    expect(all).toContain('handler failed; retrying later');
    expect(all).toContain('TELEGRAM.DOWNLOAD_FAILED');
    expect(all).not.toContain(TEST_BOT_TOKEN);
    expect(all).not.toContain(TEST_BOT_TOKEN.split(':')[1]);
    expect(all).not.toContain(TEST_WEBHOOK_SECRET);
  });
});
