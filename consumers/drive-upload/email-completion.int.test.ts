import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postroomTopology } from '../../infra/broker/subscriptions.js';
import { loadConfig } from '../../infra/config.js';
import * as honestDone from '../../infra/db/migrations/20261203T0800-honest-done.js';
import { recordEmail } from '../../infra/db/repositories/emails.repository.js';
import { registerHooks } from '../../infra/db/repositories/follow-ups.repository.js';
import { getEmailDetail } from '../../infra/db/repositories/status.repository.js';
import { setChatSubscription } from '../../infra/db/repositories/telegram.repository.js';
import { startPostroom, type Postroom } from '../../main.js';
import { deleteTestTopology, testLogger, testNamespace, waitFor } from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { TEST_AMQP_URL } from '../../test/env.js';
import { FakeTelegram } from '../../test/fake-telegram.js';
import { startHookTarget, type HookTarget } from '../../test/hook-target.js';
import { telegramStarters, TEST_BOT_TOKEN, TEST_WEBHOOK_SECRET } from '../../test/telegram-fixtures.js';

describe('an honest done: an email waits for the calls and notifications it will cause', () => {
  let t: TestDatabase;
  let target: HookTarget;
  let fake: FakeTelegram;
  const apps: Postroom[] = [];
  const namespace = testNamespace('done');
  const dir = mkdtempSync(join(tmpdir(), 'postroom-done-'));
  let uid = 0;

  const start = async (env: Record<string, string>, starters = {}) => {
    const config = loadConfig({ AMQP_URL: TEST_AMQP_URL, MYSQL_URL: t.url, LOG_LEVEL: 'silent', ...env });
    const app = await startPostroom(config, { log: testLogger(), namespace, httpPort: 0, starters });
    apps.push(app);
    await app.broker.waitConnected();
    return app;
  };

  beforeAll(async () => {
    t = await createTestDatabase('done');
    target = await startHookTarget();
    fake = await new FakeTelegram(TEST_BOT_TOKEN).start();
  });
  afterAll(async () => {
    for (const a of apps) await a.stop().catch(() => undefined);
    await deleteTestTopology(postroomTopology({ namespace }));
    await target?.close();
    await fake?.close();
    await t?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stays processing after email.processed until the outbound and notify roles have finished', async () => {
    // The hooks and the subscriber are known before the mail comes.
    const hooks = [{ name: 'crm', url: `${target.url}/in`, events: ['email.received', 'email.processed'] }];
    const file = join(dir, 'hooks.json');
    writeFileSync(file, JSON.stringify(hooks));
    const startFollowers = () =>
      start(
        {
          ROLES: 'outbound,notify',
          HOOKS_FILE: file,
          OUTBOUND_ALLOW_HOSTS: '127.0.0.1',
          TELEGRAM_BOT_TOKEN: TEST_BOT_TOKEN,
          TELEGRAM_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
          TELEGRAM_API_URL: fake.apiRoot,
        },
        { notify: telegramStarters().notify },
      );
    await setChatSubscription(t.db, {
      chat: { chatId: '4001', type: 'private' },
      subscribed: true,
      reason: null,
      updateId: 1,
    });
    // Their queues exist (as in any deployment), but nobody consumes them yet.
    await (await startFollowers()).stop();
    await start({ ROLES: 'drive', STORAGE_DIR: join(dir, 'files') });
    const { emailId } = await recordEmail(t.db, {
      source: 'imap',
      mailbox: 'INBOX',
      uid: ++uid,
      uidValidity: '1',
      receivedAt: new Date(),
      parsed: {
        messageId: `${randomUUID()}@example.com`,
        subject: 'no attachments',
        from: 'ana@example.com',
        size: 10,
        warnings: [],
        attachments: [],
      },
    });

    // Recorded without attachments, the email is closed at once: email.processed is in the outbox.
    await waitFor(async () => {
      const row = await t.db
        .selectFrom('emails')
        .select('status')
        .where('id', '=', emailId)
        .executeTakeFirst();
      return row?.status === 'done';
    });
    const before = (await getEmailDetail(t.db, emailId))!;
    expect(before.email.overall_status).toBe('processing');
    expect(before.calls.map((c) => [c.event_type, c.status]).sort()).toEqual([
      ['email.processed', 'pending'],
      ['email.received', 'pending'],
    ]);
    expect(before.notifications.map((n) => [n.chat_id, n.status])).toEqual([['4001', 'pending']]);
    expect(target.requests).toHaveLength(0);

    // The roles that make the calls and tell the chat come up: then, and only then, it is done.
    await startFollowers();
    const after = await waitFor(
      async () => {
        const d = (await getEmailDetail(t.db, emailId))!;
        return d.email.overall_status === 'done' ? d : null;
      },
      30_000,
      'the email to be done',
    );
    expect(after.calls.map((c) => c.status)).toEqual(['succeeded', 'succeeded']);
    expect(after.notifications.map((n) => n.status)).toEqual(['sent']);
    expect(target.requests).toHaveLength(2);
    expect(fake.messagesTo('4001')).toHaveLength(1);
  });

  it('fails the pending calls of a hook taken out of HOOKS_FILE, so their emails can be done', async () => {
    const emailId = randomUUID();
    const now = new Date();
    await t.db
      .insertInto('calls')
      .values({
        id: randomUUID(),
        hook: 'gone',
        event_id: randomUUID(),
        event_type: 'email.processed',
        email_id: emailId,
        status: 'pending',
        attempts: 0,
        last_status_code: null,
        last_error: null,
        idempotency_key: randomUUID(),
        created_at: now,
        updated_at: now,
      })
      .execute();
    await registerHooks(t.db, [{ name: 'crm', events: ['email.processed'] }]);
    const call = await t.db
      .selectFrom('calls')
      .selectAll()
      .where('email_id', '=', emailId)
      .executeTakeFirstOrThrow();
    expect(call).toMatchObject({
      status: 'failed',
      last_error: expect.stringMatching(/^OUTBOUND\.HOOK_REMOVED/),
    });
    expect(await t.db.selectFrom('hooks').select('name').execute()).toEqual([{ name: 'crm' }]);
  });

  it('migrates quarantined and rejected attachments from skipped to not-filed, and only those', async () => {
    const { emailId } = await recordEmail(t.db, {
      source: 'imap',
      mailbox: 'INBOX',
      uid: ++uid,
      uidValidity: '1',
      receivedAt: new Date(),
      parsed: {
        messageId: `${randomUUID()}@example.com`,
        subject: 'old rows',
        from: 'ana@example.com',
        size: 10,
        warnings: [],
        attachments: [],
      },
    });
    const rows = (['quarantined', 'rejected', 'accepted'] as const).map((verdict, seq) => ({
      id: randomUUID(),
      email_id: emailId,
      seq,
      verdict,
    }));
    await honestDone.down(t.db as never);
    for (const r of rows)
      await t.db
        .insertInto('attachments')
        .values({ ...attachmentRow(r.id, r.email_id, r.seq), verdict: r.verdict, drive_status: 'skipped' })
        .execute();
    await honestDone.up(t.db as never);
    const after = await t.db
      .selectFrom('attachments')
      .select(['verdict', 'drive_status'])
      .where('email_id', '=', emailId)
      .orderBy('seq')
      .execute();
    expect(after).toEqual([
      { verdict: 'quarantined', drive_status: 'not-filed' },
      { verdict: 'rejected', drive_status: 'not-filed' },
      { verdict: 'accepted', drive_status: 'skipped' },
    ]);
  });
});

/** An analysed attachment row as an older version wrote it (no bytes needed: nothing reads them). */
function attachmentRow(id: string, emailId: string, seq: number) {
  const now = new Date();
  return {
    id,
    email_id: emailId,
    parent_id: null,
    seq,
    filename: `file-${seq}.bin`,
    original_filename: `file-${seq}.bin`,
    size: 1,
    sha256: '0'.repeat(64),
    stored: 0,
    declared_type: 'application/octet-stream',
    detected_type: null,
    disposition: 'attachment',
    content_id: null,
    reason: 'test',
    image_width: null,
    image_height: null,
    image_format: null,
    image_orientation: null,
    thumbnail_sha256: null,
    analyzed_at: now,
    drive_file_id: null,
    drive_link: null,
    drive_folder: null,
    uploaded_at: null,
    created_at: now,
  };
}
