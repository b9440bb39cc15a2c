import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postroomTopology } from '../../infra/broker/subscriptions.js';
import { loadConfig } from '../../infra/config.js';
import { startPostroom, type Postroom } from '../../main.js';
import { deleteTestTopology, testLogger, testNamespace, waitFor } from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { TEST_AMQP_URL } from '../../test/env.js';
import { FakeTelegram } from '../../test/fake-telegram.js';
import {
  postUpdate,
  telegramStarters,
  TEST_BOT_TOKEN,
  TEST_WEBHOOK_SECRET,
  updates,
} from '../../test/telegram-fixtures.js';

describe('TELEGRAM_ALLOWED_CHATS makes the bot private', () => {
  let t: TestDatabase;
  let fake: FakeTelegram;
  const namespace = testNamespace('tgallow');

  const start = (allowed?: string): Promise<Postroom> =>
    startPostroom(
      loadConfig({
        AMQP_URL: TEST_AMQP_URL,
        MYSQL_URL: t.url,
        ROLES: 'telegram',
        TELEGRAM_BOT_TOKEN: TEST_BOT_TOKEN,
        TELEGRAM_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
        TELEGRAM_API_URL: fake.apiRoot,
        ...(allowed ? { TELEGRAM_ALLOWED_CHATS: allowed } : {}),
      }),
      { log: testLogger(), namespace, httpPort: 0, starters: telegramStarters(), retryDelaysMs: [100, 200] },
    );
  const subscribed = async (id: number) =>
    (
      await t.db
        .selectFrom('telegram_chats')
        .select('subscribed')
        .where('chat_id', '=', String(id))
        .executeTakeFirst()
    )?.subscribed === 1;

  beforeAll(async () => {
    t = await createTestDatabase('tgallow');
    fake = await new FakeTelegram(TEST_BOT_TOKEN).start();
  });
  afterAll(async () => {
    await fake?.close();
    await deleteTestTopology(postroomTopology({ namespace }));
    await t?.drop();
  });

  it('answers a chat off the list that it is private, subscribes only listed chats, and drops chats taken off the list', async () => {
    // Open bot: chat 3003 subscribes.
    const open = await start();
    await postUpdate(open.port, updates.text({ id: 3003 }, '/start'));
    await waitFor(() => subscribed(3003), 20_000, '3003 subscribed');
    await open.stop();

    // Private bot listing only 2001: 3003 is unsubscribed at start, strangers are refused.
    const closed = await start('2001');
    try {
      expect(await subscribed(3003)).toBe(false);
      await postUpdate(closed.port, updates.text({ id: 2002 }, '/start'));
      await waitFor(() => fake.messagesTo(2002).length === 1, 20_000, 'refusal');
      expect(fake.messagesTo(2002)[0]!.text).toContain('This bot is private');
      expect(await subscribed(2002)).toBe(false);
      await postUpdate(closed.port, updates.text({ id: 2001 }, '/start'));
      await waitFor(() => subscribed(2001), 20_000, '2001 subscribed');
    } finally {
      await closed.stop();
    }
  });
});
