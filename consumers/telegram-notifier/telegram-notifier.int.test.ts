import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EmailProcessedV1 } from '../../contracts/index.js';
import { createEvent } from '../../infra/broker/events.js';
import { enqueueEvents, signalOutbox } from '../../infra/broker/outbox.js';
import { postroomTopology } from '../../infra/broker/subscriptions.js';
import { names } from '../../infra/broker/topology.js';
import { loadConfig } from '../../infra/config.js';
import { setChatSubscription } from '../../infra/db/repositories/telegram.repository.js';
import { startPostroom, type Postroom } from '../../main.js';
import { deleteTestTopology, testNamespace, waitFor } from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { TEST_AMQP_URL } from '../../test/env.js';
import { FakeTelegram } from '../../test/fake-telegram.js';
import {
  capturingLogger,
  telegramStarters,
  TEST_BOT_TOKEN,
  TEST_WEBHOOK_SECRET,
} from '../../test/telegram-fixtures.js';

type Data = EmailProcessedV1['data'];

function processed(over: Partial<Data> = {}): EmailProcessedV1 {
  const emailId = randomUUID();
  return createEvent(
    'email.processed',
    {
      emailId,
      messageId: `${emailId}@mail.example.com`,
      source: 'imap',
      subject: 'Invoice 2026-11',
      from: 'ana@example.com',
      chatId: null,
      attachments: [
        {
          attachmentId: randomUUID(),
          filename: 'invoice.pdf',
          verdict: 'accepted',
          reason: 'PDF document, as declared',
          driveStatus: 'uploaded',
          link: 'https://drive.google.com/file/d/1AbC/view?usp=drive_link&x=1',
        },
      ],
      ...over,
    },
    { correlationId: emailId },
  );
}

describe('Telegram notifier', () => {
  let t: TestDatabase;
  let fake: FakeTelegram;
  let app: Postroom;
  const namespace = testNamespace('tgnotify');
  const captured = capturingLogger();
  const subscribers = ['3001', '3002', '3003'];

  const publish = async (...events: EmailProcessedV1[]) => {
    await t.db.transaction().execute((trx) => enqueueEvents(trx, events));
    signalOutbox();
  };
  const notificationsOf = (emailId: string) =>
    t.db.selectFrom('notifications').selectAll().where('email_id', '=', emailId).orderBy('chat_id').execute();
  const settled = (emailId: string, count: number) =>
    waitFor(
      async () => {
        const rows = await notificationsOf(emailId);
        return rows.length === count && rows.every((r) => r.status !== 'pending') ? rows : null;
      },
      30_000,
      `notifications of ${emailId}`,
    );
  const sentEvents = async (emailId: string) =>
    (await t.db.selectFrom('outbox').select('body').where('routing_key', '=', 'notification.sent').execute())
      .map(
        (r) =>
          JSON.parse(r.body) as {
            data: { emailId: string; chatId: string; status: string; telegramMessageId: number | null };
          },
      )
      .filter((e) => e.data.emailId === emailId)
      .map((e) => e.data);

  beforeAll(async () => {
    t = await createTestDatabase('tgnotify');
    fake = await new FakeTelegram(TEST_BOT_TOKEN).start();
    const config = loadConfig({
      AMQP_URL: TEST_AMQP_URL,
      MYSQL_URL: t.url,
      ROLES: 'notify',
      TELEGRAM_BOT_TOKEN: TEST_BOT_TOKEN,
      TELEGRAM_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
      TELEGRAM_API_URL: fake.apiRoot,
      LOG_LEVEL: 'debug',
    });
    // 429s asking for more than 500 ms go back to the broker (with retry_after) instead of waiting here.
    const { notify } = telegramStarters({ maxInProcessWaitMs: 500 });
    app = await startPostroom(config, {
      log: captured.log,
      namespace,
      httpPort: 0,
      starters: { notify },
      retryDelaysMs: [100, 200],
    });
    await app.broker.waitConnected();
    let updateId = 1;
    for (const chatId of [...subscribers, '3004'])
      await setChatSubscription(t.db, {
        chat: { chatId, type: 'private' },
        subscribed: chatId !== '3004',
        reason: null,
        updateId: updateId++,
      });
  });
  afterAll(async () => {
    await app?.stop();
    await fake?.close();
    await deleteTestTopology(postroomTopology({ namespace }));
    await t?.drop();
  });

  it('tells each subscribed chat once, even when the event comes again, with escaped HTML', async () => {
    const e = processed({
      subject: '<b>Q3</b> report & more',
      from: 'Bob <bob@example.com>',
      attachments: [
        ...processed().data.attachments,
        {
          attachmentId: randomUUID(),
          filename: 'run.pdf',
          verdict: 'quarantined',
          reason: 'Windows program named <.pdf>',
          driveStatus: 'skipped',
          link: null,
        },
        {
          attachmentId: randomUUID(),
          filename: 'huge.tif',
          verdict: 'rejected',
          reason: 'over 100000000 pixels',
          driveStatus: 'skipped',
          link: null,
        },
      ],
    });
    await publish(e);
    // The same envelope delivered again, and a second envelope for the same email (a replay).
    const body = Buffer.from(JSON.stringify(e));
    await app.broker.publish(names.exchange(namespace, 'mail'), e.type, body, { messageId: e.id });
    await publish({ ...e, id: randomUUID() });

    const rows = await settled(e.data.emailId, 3);
    await new Promise((r) => setTimeout(r, 1_500));
    for (const chat of subscribers) expect(fake.messagesTo(chat)).toHaveLength(1);
    expect(fake.messagesTo('3004')).toHaveLength(0);

    const [message] = fake.messagesTo('3001');
    expect(message!.text).toBe(
      [
        '📬 New email processed',
        'From: Bob <bob@example.com>',
        'Subject: <b>Q3</b> report & more',
        '✅ invoice.pdf: accepted · filed: open',
        '☣️ run.pdf: quarantined (Windows program named <.pdf>)',
        '⛔ huge.tif: rejected (over 100000000 pixels)',
      ].join('\n'),
    );
    expect(message!.html).toContain(
      '<a href="https://drive.google.com/file/d/1AbC/view?usp=drive_link&amp;x=1">open</a>',
    );
    expect(message!.html).toContain('&lt;b&gt;Q3&lt;/b&gt; report &amp; more');

    expect(rows.map((r) => [r.chat_id, r.status, r.attempts])).toEqual(
      subscribers.map((c) => [c, 'sent', 1]),
    );
    for (const r of rows) expect(r.telegram_message_id).toBe(fake.messagesTo(r.chat_id)[0]!.messageId);
    const events = await sentEvents(e.data.emailId);
    expect(events.map((d) => [d.chatId, d.status]).sort()).toEqual(subscribers.map((c) => [c, 'sent']));
    const timeline = await t.db
      .selectFrom('timeline')
      .select(['stage', 'event'])
      .where('email_id', '=', e.data.emailId)
      .execute();
    expect(
      timeline
        .filter((r) => r.stage === 'notify')
        .map((r) => r.event)
        .sort(),
    ).toEqual(['notification.sent', 'notification.sent', 'notification.sent', 'notifications.pending']);
  });

  it('honours a 429 retry_after: the chat is tried again only after it, and told once', async () => {
    fake.failNext(
      'sendMessage',
      { error_code: 429, description: 'Too Many Requests: retry after 1', parameters: { retry_after: 1 } },
      { chatId: '3001' },
    );
    const e = processed({ subject: 'slow down' });
    await publish(e);
    const rows = await settled(e.data.emailId, 3);
    expect(rows.map((r) => [r.chat_id, r.status, r.attempts])).toEqual([
      ['3001', 'sent', 2],
      ['3002', 'sent', 1],
      ['3003', 'sent', 1],
    ]);
    const tries = fake
      .callsOf('sendMessage')
      .filter((c) => c.params['chat_id'] === '3001' && String(c.params['text']).includes('slow down'));
    expect(tries).toHaveLength(2);
    expect(tries[1]!.at - tries[0]!.at).toBeGreaterThanOrEqual(1_000);
    expect(fake.messagesTo('3001').filter((m) => m.text.includes('slow down'))).toHaveLength(1);
    expect(captured.lines.join('\n')).toContain('Telegram asked to slow down (429)');
  });

  it('sends about one message a second to a chat', async () => {
    const before = fake.messagesTo('3003').length;
    const emails = [
      processed({ subject: 'one' }),
      processed({ subject: 'two' }),
      processed({ subject: 'three' }),
    ];
    await publish(...emails);
    for (const e of emails) await settled(e.data.emailId, 3);
    const at = fake
      .messagesTo('3003')
      .slice(before)
      .map((m) => m.at);
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(950);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(950);
  });

  it('unsubscribes a chat that blocked the bot (403) and stops telling it', async () => {
    fake.block('3002');
    const e = processed({ subject: 'blocked?' });
    await publish(e);
    const rows = await settled(e.data.emailId, 3);
    expect(rows.find((r) => r.chat_id === '3002')).toMatchObject({ status: 'unsubscribed', attempts: 1 });
    expect(rows.find((r) => r.chat_id === '3002')!.last_error).toContain(
      'Forbidden: bot was blocked by the user',
    );
    const chat = await t.db
      .selectFrom('telegram_chats')
      .selectAll()
      .where('chat_id', '=', '3002')
      .executeTakeFirstOrThrow();
    expect(chat).toMatchObject({ subscribed: 0, unsubscribed_reason: 'blocked' });
    expect((await sentEvents(e.data.emailId)).find((d) => d.chatId === '3002')).toEqual({
      chatId: '3002',
      emailId: e.data.emailId,
      status: 'unsubscribed',
      telegramMessageId: null,
    });

    const calls = fake.callsOf('sendMessage').filter((c) => c.params['chat_id'] === '3002').length;
    const next = processed({ subject: 'after the block' });
    await publish(next);
    expect((await settled(next.data.emailId, 2)).map((r) => r.chat_id)).toEqual(['3001', '3003']);
    expect(fake.callsOf('sendMessage').filter((c) => c.params['chat_id'] === '3002').length).toBe(calls);
  });

  it('marks a notification failed when Telegram refuses it for good, or keeps failing to the last attempt', async () => {
    fake.failNext(
      'sendMessage',
      { error_code: 400, description: 'Bad Request: chat not found' },
      { chatId: '3001' },
    );
    fake.failNext(
      'sendMessage',
      { error_code: 502, description: 'Bad Gateway' },
      { chatId: '3003', times: 10 },
    );
    const e = processed({ subject: 'doomed' });
    await publish(e);
    const rows = await settled(e.data.emailId, 2);
    expect(rows[0]).toMatchObject({ chat_id: '3001', status: 'failed', attempts: 1 });
    expect(rows[0]!.last_error).toContain('TELEGRAM.BAD_REQUEST');
    expect(rows[1]).toMatchObject({ chat_id: '3003', status: 'failed', attempts: 3 });
    expect(rows[1]!.last_error).toContain('TELEGRAM.UNAVAILABLE');
    expect((await sentEvents(e.data.emailId)).map((d) => d.status)).toEqual(['failed', 'failed']);
    fake.failNext(
      'sendMessage',
      { error_code: 502, description: 'Bad Gateway' },
      { chatId: '3003', times: 0 },
    );
  });

  it('answers a file sent to the bot in its own chat only, as a reply to it', async () => {
    const e = processed({
      source: 'telegram',
      chatId: '3005',
      messageId: 'telegram-3005-77@telegram.postroom',
      from: '@eve',
      subject: 'scan',
      attachments: [
        {
          ...processed().data.attachments[0]!,
          filename: 'scan.pdf',
          link: 'file:///srv/drive/@eve/scan.pdf',
        },
      ],
    });
    await publish(e);
    const rows = await settled(e.data.emailId, 1);
    expect(rows).toMatchObject([{ chat_id: '3005', status: 'sent' }]);
    const [reply] = fake.messagesTo('3005');
    expect(reply!.text).toBe(
      '📎 Your file is processed\n✅ scan.pdf: accepted · filed: file:///srv/drive/@eve/scan.pdf',
    );
    expect(reply!.replyTo).toBe(77);
    for (const chat of subscribers)
      expect(fake.messagesTo(chat).some((m) => m.text.includes('scan.pdf'))).toBe(false);
  });

  it('never writes the bot token to the logs', () => {
    const all = captured.lines.join('\n');
    expect(all).toContain('notification failed for good');
    expect(all).not.toContain(TEST_BOT_TOKEN);
    expect(all).not.toContain(TEST_BOT_TOKEN.split(':')[1]);
  });
});
