/**
 * Error tracking against a local receiver of Sentry envelopes (never sentry.io): a parked message is
 * reported with its consumer, event type and code as tags; an error the process does not handle is
 * reported from a real child process; and no secret, token or mail content is in anything sent.
 */
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostroom, type Postroom } from '../main.js';
import { deleteTestTopology, testLogger, testNamespace, waitFor } from '../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../test/db.js';
import { startFakeSentry, type FakeSentry } from '../test/fake-sentry.js';
import { names } from './broker/topology.js';
import { postroomTopology } from './broker/subscriptions.js';
import { loadConfig } from './config.js';
import { errorTracker, scrubEvent } from './error-tracking.js';
import { TEST_AMQP_URL } from '../test/env.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TOKEN = 'api-token-7f3c9a1e5b2d4c6a';
const BOT_TOKEN = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0';
const WEBHOOK_SECRET = 'webhook-secret-5e8d2c1b';
const MAIL_TEXT = 'Dear Ana, the contract amount is 48,250 EUR';

let sentry: FakeSentry;
beforeAll(async () => {
  sentry = await startFakeSentry();
});
afterAll(async () => {
  await sentry?.close();
});

describe('scrubEvent', () => {
  it('replaces secret values anywhere, drops secret headers and payloads, cuts long strings', () => {
    const out = scrubEvent(
      {
        message: `failed with ${TOKEN} at amqp://user:hunter2secret@mq/`,
        request: { headers: { Authorization: `Bearer ${TOKEN}`, Accept: 'x' }, data: MAIL_TEXT },
        extra: { bytes: Buffer.from(MAIL_TEXT), note: 'x'.repeat(5_000), body: MAIL_TEXT },
        exception: { values: [{ value: `Bearer abc.def.ghi and ${BOT_TOKEN}` }] },
      },
      [TOKEN],
    );
    const text = JSON.stringify(out);
    for (const secret of [TOKEN, 'hunter2secret', MAIL_TEXT, BOT_TOKEN, 'abc.def.ghi'])
      expect(text).not.toContain(secret);
    expect(out.request.headers.Accept).toBe('x');
    expect(out.extra.note.length).toBeLessThan(2_100);
  });
});

describe('with SENTRY_DSN, a running Postroom', () => {
  let t: TestDatabase;
  let app: Postroom;
  const namespace = testNamespace('sentry');

  beforeAll(async () => {
    t = await createTestDatabase('sentry');
    app = await startPostroom(
      loadConfig({
        AMQP_URL: TEST_AMQP_URL,
        ROLES: 'analysis,api',
        MYSQL_URL: t.url,
        API_TOKENS: TOKEN,
        TELEGRAM_BOT_TOKEN: BOT_TOKEN,
        TELEGRAM_WEBHOOK_SECRET: WEBHOOK_SECRET,
        SENTRY_DSN: sentry.dsn,
      }),
      { log: testLogger(), namespace, httpPort: 0 },
    );
    await app.broker.waitConnected();
  });
  afterAll(async () => {
    await app?.stop();
    await deleteTestTopology(postroomTopology({ namespace }));
    await t?.drop();
  });

  it('reports a parked message with consumer, event type and code as tags, and no mail content', async () => {
    // An attachment.stored whose data is invalid (a secret and mail text inside it): parked as invalid.
    const bad = {
      id: '0b3f6d1e-2c4a-4e8b-9f1a-7d5c3b2a1e0f',
      type: 'attachment.stored',
      version: 1,
      occurredAt: new Date().toISOString(),
      correlationId: 'mail-1',
      causationId: null,
      data: { note: MAIL_TEXT, token: TOKEN },
    };
    await app.broker.publish(
      '',
      names.queue(namespace, 'attachment-analysis'),
      Buffer.from(JSON.stringify(bad)),
      {
        messageId: bad.id,
      },
    );
    await waitFor(
      () => sentry.events.some((e) => e.tags?.['consumer'] === 'attachment-analysis'),
      15_000,
      'parked report',
    );
    const event = sentry.events.find((e) => e.tags?.['consumer'] === 'attachment-analysis')!;
    expect(event.tags).toMatchObject({ consumer: 'attachment-analysis', event_type: 'attachment.stored' });
    expect(event.tags?.['code']).toBe('VALIDATION.FAILED');
    expect(event.tags?.['correlation_id']).toBe('mail-1');
    for (const body of sentry.raw) {
      for (const secret of [TOKEN, BOT_TOKEN, WEBHOOK_SECRET, MAIL_TEXT]) expect(body).not.toContain(secret);
    }
  });

  it('without a DSN the tracker is a no-op that sends nothing', async () => {
    const before = sentry.raw.length;
    const { startErrorTracking } = await import('./error-tracking.js');
    const off = await startErrorTracking(loadConfig({}), testLogger());
    off.parked({ consumer: 'x', eventType: null, code: 'X', reason: 'y', correlationId: null });
    await off.flush();
    expect(sentry.raw.length).toBe(before);
    expect(errorTracker()).not.toBe(off); // the process-wide tracker of the running app is untouched
  });
});

describe('an error nobody handles', () => {
  it('is reported by a real process before it exits, scrubbed of secrets', async () => {
    const script = `
      import { loadConfig } from './dist/infra/config.js';
      import { createLogger } from './dist/infra/logger.js';
      import { startErrorTracking } from './dist/infra/error-tracking.js';
      await startErrorTracking(loadConfig(process.env), createLogger('silent'));
      setTimeout(() => { throw new Error('boom while using ' + process.env.API_TOKENS); }, 10);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: REPO,
      env: { PATH: process.env['PATH'], SENTRY_DSN: sentry.dsn, API_TOKENS: TOKEN },
      stdio: 'ignore',
    });
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(code).not.toBe(0);
    const event = sentry.events.find((e) =>
      e.exception?.values?.some((v) => v.value?.startsWith('boom while using')),
    );
    expect(event?.exception?.values?.[0]?.value).toBe('boom while using [redacted]');
    for (const body of sentry.raw) expect(body).not.toContain(TOKEN);
  });
});
