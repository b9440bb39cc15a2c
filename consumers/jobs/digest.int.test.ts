import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConsumer, type RunningConsumer } from '../../infra/broker/consume.js';
import type { Broker } from '../../infra/broker/connection.js';
import { startOutboxRelay, type OutboxRelay } from '../../infra/broker/outbox-relay.js';
import type { Topology } from '../../infra/broker/topology.js';
import { recordEmail } from '../../infra/db/repositories/emails.repository.js';
import { recordRun } from '../../infra/db/repositories/jobs.repository.js';
import { signalOutbox } from '../../infra/broker/outbox.js';
import { parseSchedules } from '../../infra/schedules/schedules-file.js';
import { createTelegramClient } from '../../infra/telegram/telegram-client.js';
import {
  deleteTestTopology,
  startTestBroker,
  testLogger,
  testNamespace,
  testTopology,
  waitFor,
} from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { FakeTelegram } from '../../test/fake-telegram.js';
import { TEST_BOT_TOKEN } from '../../test/telegram-fixtures.js';
import { createDigestRunner } from './digest.handler.js';
import { createJobsHandler } from './jobs.handler.js';

describe('digest: each subscribed chat gets one summary of the mail since its last digest', () => {
  let t: TestDatabase;
  let broker: Broker;
  let relay: OutboxRelay;
  let topology: Topology;
  let consumer: RunningConsumer;
  let fake: FakeTelegram;
  const log = testLogger();
  const jobs = parseSchedules([
    { name: 'morning', kind: 'digest', schedule: '0 8 * * *', timezone: 'Europe/Berlin' },
  ]);

  beforeAll(async () => {
    t = await createTestDatabase('digest');
    fake = await new FakeTelegram(TEST_BOT_TOKEN).start();
    topology = testTopology(testNamespace('digest'), { jobs: ['schedule.fired'] });
    broker = await startTestBroker(topology);
    relay = startOutboxRelay({ broker, db: t.db, log, pollMs: 100 });
    const telegram = createTelegramClient({ token: TEST_BOT_TOKEN, apiRoot: fake.apiRoot, log });
    consumer = await startConsumer(
      createJobsHandler({
        jobs: new Map(jobs.map((j) => [j.name, j])),
        runners: { digest: createDigestRunner(telegram) },
      }),
      { broker, db: t.db, log },
    );
    const now = new Date('2026-03-01T00:00:00Z');
    await t.db
      .insertInto('telegram_chats')
      .values(
        ['1001', '1002'].map((chat_id) => ({
          chat_id,
          type: 'private',
          subscribed: 1,
          created_at: now,
          updated_at: now,
        })),
      )
      .execute();
  });
  afterAll(async () => {
    await consumer?.stop();
    await relay?.stop();
    await broker?.close();
    await deleteTestTopology(topology);
    await fake?.close();
    await t?.drop();
  });

  const mail = async (from: string, receivedAt: string, verdict: string) => {
    const { emailId } = await recordEmail(t.db, {
      source: 'telegram',
      chatId: '1001',
      receivedAt: new Date(receivedAt),
      parsed: {
        messageId: `${randomUUID()}@mail.example`,
        subject: 'x',
        from,
        size: 10,
        warnings: [],
        attachments: [
          {
            id: randomUUID(),
            parentId: null,
            filename: 'a.pdf',
            originalFilename: 'a.pdf',
            declaredType: 'application/pdf',
            disposition: 'attachment',
            contentId: null,
            size: 1,
            sha256: 'a'.repeat(64),
            stored: false,
          },
        ],
      },
    });
    await t.db.updateTable('attachments').set({ verdict }).where('email_id', '=', emailId).execute();
  };

  it('sends one digest per chat per due time, covering the mail since that chat last got one', async () => {
    // 08:00 in Berlin is 07:00 UTC in March (winter time).
    await mail('ana@example.com', '2026-03-01T09:00:00Z', 'accepted');
    await mail('ana@example.com', '2026-03-01T12:00:00Z', 'quarantined');
    await mail('<b>bo</b>@example.com', '2026-03-01T15:00:00Z', 'accepted');
    await mail('late@example.com', '2026-03-02T07:30:00Z', 'accepted'); // after the first digest
    await t.db
      .insertInto('dead_letters')
      .values({
        id: randomUUID(),
        dedupe_key: 'k1',
        consumer: 'drive-upload',
        queue: 'q',
        event_id: null,
        event_type: null,
        correlation_id: null,
        body: '{}',
        headers: '{}',
        reason: 'DRIVE.QUOTA_EXCEEDED: out of space',
        attempts: 6,
        parked_at: new Date('2026-03-01T16:00:00Z'),
        replayed_at: null,
      })
      .execute();

    // What a scheduler does at each due time (scheduler.int.test.ts tests the claiming itself).
    const due = async (at: string) => {
      await t.db
        .transaction()
        .execute((trx) =>
          recordRun(
            trx,
            { job: 'morning', kind: 'digest', dueAt: new Date(at), trigger: 'schedule' },
            new Date(at),
          ),
        );
      signalOutbox();
    };
    fake.failNext(
      'sendMessage',
      { error_code: 500, description: 'Internal Server Error' },
      { chatId: '1002' },
    );
    await due('2026-03-02T07:00:00Z'); // 08:00 in Berlin
    const first = await waitFor(
      () => t.db.selectFrom('job_runs').selectAll().where('status', '=', 'failed').executeTakeFirst(),
      15_000,
      'first run done',
    );
    expect(first.detail).toContain('sent to 1 of 2 subscribed chats');
    expect(fake.messagesTo('1001')).toHaveLength(1);
    const text = fake.messagesTo('1001')[0]!.text;
    expect(text).toContain('morning: 3 emails');
    expect(text).toContain('Attachments: 2 accepted, 1 quarantined');
    expect(text).toContain('ana@example.com (2), <b>bo</b>@example.com'); // shown as text, not markup
    expect(text).toContain('Parked: 1 message');
    expect(text).toContain('DRIVE.QUOTA_EXCEEDED');

    // The next morning: chat 1001 gets the day since its digest; 1002, never told, gets both days.
    await due('2026-03-03T07:00:00Z');
    await waitFor(
      () => fake.messagesTo('1002').length === 1 && fake.messagesTo('1001').length === 2,
      15_000,
      'second digests',
    );
    expect(fake.messagesTo('1001')[1]!.text).toContain('morning: 1 email (');
    expect(fake.messagesTo('1002')[0]!.text).toContain('morning: 4 emails');
    await new Promise((r) => setTimeout(r, 300));
    expect(fake.messagesTo('1001')).toHaveLength(2);
    expect(fake.messagesTo('1002')).toHaveLength(1);
  });
});
