import { connect } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { names } from '../../infra/broker/topology.js';
import { postroomTopology } from '../../infra/broker/subscriptions.js';
import { loadConfig } from '../../infra/config.js';
import type { RoleContext } from '../../infra/roles.js';
import { startPostroom, type Postroom } from '../../main.js';
import { deleteTestTopology, testLogger, testNamespace, waitFor } from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { TEST_AMQP_URL } from '../../test/env.js';
import { FakeTelegram } from '../../test/fake-telegram.js';
import {
  capturingLogger,
  postUpdate,
  TEST_BOT_TOKEN,
  TEST_WEBHOOK_SECRET,
  updates,
} from '../../test/telegram-fixtures.js';
import { startTelegramWebhook } from './index.js';

describe('Telegram webhook', () => {
  let t: TestDatabase;
  let fake: FakeTelegram;
  let app: Postroom;
  const namespace = testNamespace('tgwh');
  const captured = capturingLogger();

  /** Messages waiting in the bot's queue once the outbox is flushed. */
  const queued = async (): Promise<Buffer[]> => {
    await app.relay.flush();
    const conn = await connect(TEST_AMQP_URL);
    try {
      const ch = await conn.createChannel();
      const out: Buffer[] = [];
      for (;;) {
        const m = await ch.get(names.queue(namespace, 'telegram-bot'), { noAck: false });
        if (!m) break;
        out.push(m.content);
      }
      await ch.close(); // unacked messages go back to the queue
      return out;
    } finally {
      await conn.close();
    }
  };
  const accepted = async () => (await t.db.selectFrom('telegram_updates').selectAll().execute()).length;

  beforeAll(async () => {
    t = await createTestDatabase('tgwebhook');
    fake = await new FakeTelegram(TEST_BOT_TOKEN).start();
    const config = loadConfig({
      AMQP_URL: TEST_AMQP_URL,
      MYSQL_URL: t.url,
      ROLES: 'telegram',
      TELEGRAM_BOT_TOKEN: TEST_BOT_TOKEN,
      TELEGRAM_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
      TELEGRAM_API_URL: fake.apiRoot,
      TELEGRAM_PUBLIC_URL: 'https://postroom.example/',
      LOG_LEVEL: 'debug',
    });
    app = await startPostroom(config, {
      log: captured.log,
      namespace,
      httpPort: 0,
      starters: { telegram: startTelegramWebhook },
    });
    await app.broker.waitConnected();
  });
  afterAll(async () => {
    await app?.stop();
    await fake?.close();
    await deleteTestTopology(postroomTopology({ namespace }));
    await t?.drop();
  });

  it('registers itself with setWebhook: the public URL, the secret and the updates it handles', async () => {
    const hook = await waitFor(() => fake.webhook, 10_000, 'setWebhook');
    expect(hook).toEqual({
      url: 'https://postroom.example/telegram/webhook',
      secret_token: TEST_WEBHOOK_SECRET,
      allowed_updates: ['message', 'callback_query', 'my_chat_member'],
    });
  });

  it('answers 401 and publishes nothing without the right secret', async () => {
    const update = updates.text({ id: 42 }, '/start');
    for (const secret of [
      null,
      '',
      'wrong',
      TEST_WEBHOOK_SECRET.slice(0, -1) + 'X',
      `${TEST_WEBHOOK_SECRET}x`,
    ]) {
      const res = await postUpdate(app.port, update, secret);
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({
        error: { code: 'UNAUTHORIZED', message: 'Missing or wrong X-Telegram-Bot-Api-Secret-Token' },
      });
    }
    expect(await accepted()).toBe(0);
    expect(await queued()).toEqual([]);
  });

  it('publishes an update once, however often Telegram sends it', async () => {
    const update = updates.text({ id: 42, username: 'ana' }, '/start');
    const first = await postUpdate(app.port, update);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ ok: true, duplicate: false });
    const again = await Promise.all([
      postUpdate(app.port, update),
      postUpdate(app.port, update),
      postUpdate(app.port, update),
    ]);
    for (const r of again) {
      expect(r.status).toBe(200);
      expect(await r.json()).toEqual({ ok: true, duplicate: true });
    }
    const messages = await queued();
    expect(messages).toHaveLength(1);
    const event = JSON.parse(messages[0]!.toString()) as {
      type: string;
      correlationId: string;
      data: unknown;
    };
    expect(event.type).toBe('telegram.update');
    expect(event.correlationId).toBe(`telegram-update-${update.update_id}`);
    expect(event.data).toEqual({ updateId: update.update_id, update });
    expect(await accepted()).toBe(1);
  });

  it('refuses what is not an Update, and bodies over the limit', async () => {
    const before = await accepted();
    const cases: [unknown, number, string][] = [
      [{}, 400, 'INVALID_UPDATE'],
      [{ update_id: '7' }, 400, 'INVALID_UPDATE'],
      [{ update_id: -1 }, 400, 'INVALID_UPDATE'],
      [[{ update_id: 7 }], 400, 'INVALID_UPDATE'],
      ['{"update_id": 7', 400, 'INVALID_JSON'],
      [{ update_id: 8, message: { text: 'x'.repeat(300 * 1024) } }, 413, 'PAYLOAD_TOO_LARGE'],
    ];
    for (const [body, status, code] of cases) {
      const res = await postUpdate(app.port, body);
      expect(res.status, JSON.stringify(body).slice(0, 40)).toBe(status);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    }
    expect(await accepted()).toBe(before);
  });

  it('documents the route in the OpenAPI document', async () => {
    const doc = (await (await fetch(`http://127.0.0.1:${app.port}/openapi.json`)).json()) as {
      paths: Record<string, { post?: { responses: Record<string, unknown> } }>;
      components: { schemas: Record<string, unknown> };
    };
    expect(Object.keys(doc.paths['/telegram/webhook']?.post?.responses ?? {})).toEqual(
      expect.arrayContaining(['200', '400', '401', '413', '503']),
    );
    expect(doc.components.schemas['TelegramUpdate']).toBeDefined();
  });

  it('never logs the token or the secret', async () => {
    const all = captured.lines.join('\n');
    expect(all).toContain('Telegram webhook registered');
    expect(all).not.toContain(TEST_BOT_TOKEN);
    expect(all).not.toContain(TEST_BOT_TOKEN.split(':')[1]);
    expect(all).not.toContain(TEST_WEBHOOK_SECRET);
  });

  it('is off without a bot token', async () => {
    const ctx = { config: loadConfig({}), log: testLogger() } as unknown as RoleContext;
    expect(await startTelegramWebhook(ctx)).toBeNull();
  });
});
