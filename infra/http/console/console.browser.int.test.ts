import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOutboundApi } from '../../../consumers/outbound-api/index.js';
import { startPostroom, type Postroom } from '../../../main.js';
import { deleteTestTopology, testLogger, testNamespace, waitFor } from '../../../test/broker.js';
import { launchChromium } from '../../../test/browser.js';
import { createTestDatabase, type TestDatabase } from '../../../test/db.js';
import { imapEnv, startDovecot, type DovecotServer } from '../../../test/dovecot.js';
import { FakeDrive, FOLDER_MIME } from '../../../test/fake-drive.js';
import { png as pngBytes, windowsExe } from '../../../test/file-fixtures.js';
import { startHookTarget, type HookTarget } from '../../../test/hook-target.js';
import { base64Lines, SMALL_PDF } from '../../../test/mail-corpus.js';
import { postroomTopology } from '../../broker/subscriptions.js';
import { loadConfig } from '../../config.js';
import { TEST_AMQP_URL } from '../../../test/env.js';

/** Where the screenshots go (gitignored; CI keeps them as artefacts). */
const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'console');
const TOKEN = 'console-operator-token-0123456789';
const WIDTHS = { narrow: 360, wide: 1440 } as const;

const HOSTILE_SUBJECT = '<script>alert("subject")</script><img src=x onerror=alert("img")>';
const HOSTILE_FILE = '<img src=x onerror=alert(1)>.pdf';
const LONG_WORD = 'A'.repeat(400);
/** RFC 2047 encoded-word of a UTF-8 header value. */
const encoded = (s: string) => `=?UTF-8?B?${Buffer.from(s).toString('base64')}?=`;

/** A mail with attachments (name, declared type, bytes), as a mailer writes it. */
function mail(o: {
  messageId: string;
  subject: string;
  from: string;
  files: { name: string; type: string; bytes: Buffer }[];
}): Buffer {
  const parts = o.files.map((f) =>
    [
      '--b1',
      `Content-Type: ${f.type}`,
      `Content-Disposition: attachment; filename*=utf-8''${encodeURIComponent(f.name)}`,
      'Content-Transfer-Encoding: base64',
      '',
      base64Lines(f.bytes),
    ].join('\r\n'),
  );
  return Buffer.from(
    [
      `From: ${o.from}`,
      'To: inbox@postroom.test',
      `Subject: ${o.subject}`,
      'Date: Thu, 26 Nov 2026 10:00:00 +0000',
      `Message-ID: <${o.messageId}>`,
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain',
      '',
      'See attached.',
      ...parts,
      '--b1--',
      '',
    ].join('\r\n'),
  );
}

/**
 * The operator console in a real Chromium, over mail that went through the real pipeline: Dovecot,
 * the IMAP poller, analysis, Drive (the fake, through the real client), RabbitMQ and MariaDB.
 */
describe('operator console in a browser', () => {
  const namespace = testNamespace('console');
  let dovecot: DovecotServer;
  let t: TestDatabase;
  let drive: FakeDrive;
  let app: Postroom;
  let hook: HookTarget;
  let hooksDir: string;
  let chrome: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;
  let base: string;
  /** Dialogs opened and console errors logged by any page: hostile mail must cause neither. */
  const dialogs: string[] = [];
  const consoleErrors: string[] = [];

  const emailId = async (messageId: string) =>
    (await t.db
      .selectFrom('emails')
      .select(['id', 'status'])
      .where('message_id', '=', messageId)
      .executeTakeFirst()) ?? null;
  const waitDone = (messageId: string, what: string) =>
    waitFor(
      async () => {
        const e = await emailId(messageId);
        return e?.status === 'done' ? e.id : null;
      },
      30_000,
      what,
    );

  async function shoot(name: string): Promise<void> {
    for (const [label, width] of Object.entries(WIDTHS)) {
      await page.setViewportSize({ width, height: 900 });
      // Nothing may be wider than the window: hostile long words wrap instead.
      const overflow = await page.evaluate<number>(
        'document.documentElement.scrollWidth - document.documentElement.clientWidth',
      );
      expect(overflow, `${name} at ${width} px is wider than the window`).toBeLessThanOrEqual(0);
      await page.screenshot({ path: join(ARTIFACTS, `${name}-${label}.png`), fullPage: true });
    }
    await page.setViewportSize({ width: WIDTHS.wide, height: 900 });
  }

  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    dovecot = await startDovecot();
    t = await createTestDatabase('console');
    drive = await FakeDrive.start();
    hook = await startHookTarget();
    hooksDir = await mkdtemp(join(tmpdir(), 'postroom-console-hooks-'));
    const hooksFile = join(hooksDir, 'hooks.json');
    await writeFile(
      hooksFile,
      JSON.stringify([{ name: 'archive', url: hook.url, events: ['email.processed'], maxRetryHours: 0.5 }]),
    );
    app = await startPostroom(
      loadConfig({
        AMQP_URL: TEST_AMQP_URL,
        ...imapEnv(dovecot),
        ROLES: 'imap,analysis,drive,outbound,api',
        HOOKS_FILE: hooksFile,
        OUTBOUND_ALLOW_HOSTS: '127.0.0.1',
        MYSQL_URL: t.url,
        DRIVE_ACCESS_TOKEN: 'fake-drive-token',
        DRIVE_API_URL: drive.url,
        API_TOKENS: TOKEN,
        // Two failed sign-ins per address, one more every 30 s.
        API_RATE_LIMIT_PER_MINUTE: '2',
        LOG_LEVEL: 'silent',
      }),
      {
        log: testLogger(),
        namespace,
        httpPort: 0,
        retryDelaysMs: [100, 200],
        // maxRetryHours 0.5 of a 1-second hour: the archive's outage is given up on after half a second.
        starters: { outbound: (ctx) => startOutboundApi(ctx, { hourMs: 1_000 }) },
      },
    );
    base = `http://127.0.0.1:${app.port}`;
    chrome = await launchChromium();
    page = await chrome.browser.newPage();
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (err) => consoleErrors.push(err.message));
    await page.setViewportSize({ width: WIDTHS.wide, height: 900 });

    const png = await pngBytes(64, 48);
    await dovecot.append(
      mail({
        messageId: 'invoice-1@mail.example',
        subject: 'Invoice November',
        from: '"Ana" <ana@example.com>',
        files: [
          { name: 'invoice.pdf', type: 'application/pdf', bytes: SMALL_PDF },
          { name: 'scan.bin', type: 'application/octet-stream', bytes: png },
          { name: 'totally-safe.pdf', type: 'application/pdf', bytes: windowsExe() },
        ],
      }),
    );
    await dovecot.append(
      mail({
        messageId: 'hostile-1@mail.example',
        subject: encoded(`${HOSTILE_SUBJECT} \u202Egpj.exe ${LONG_WORD}`),
        from: `"${'<b>Mallory</b>'}" <mallory@evil.example>`,
        files: [{ name: HOSTILE_FILE, type: 'application/pdf', bytes: SMALL_PDF }],
      }),
    );
    await waitDone('invoice-1@mail.example', 'invoice mail done');
    await waitDone('hostile-1@mail.example', 'hostile mail done');
    await waitFor(async () => hook.requests.length === 2, 30_000, 'two hook calls');
    // The archive is down from now on: the outbound consumer gives up on the next mail's call and
    // parks its message.
    hook.reply({ status: 503, body: 'archive is down for maintenance' });
    await dovecot.append(
      mail({
        messageId: 'parked-1@mail.example',
        subject: 'Contract to file later',
        from: 'bo@example.org',
        files: [{ name: 'contract.pdf', type: 'application/pdf', bytes: SMALL_PDF }],
      }),
    );
    await waitFor(
      () => t.db.selectFrom('dead_letters').select('id').where('replayed_at', 'is', null).executeTakeFirst(),
      30_000,
      'dead letter parked',
    );
  }, 120_000);

  afterAll(async () => {
    await chrome?.close();
    await app?.stop();
    await deleteTestTopology(postroomTopology({ namespace, retryDelaysMs: [100, 200] }));
    await dovecot?.stop();
    await drive?.close();
    await hook?.close();
    if (hooksDir) await rm(hooksDir, { recursive: true, force: true });
    await t?.drop();
  });

  it('sends a visitor to the sign-in page, refuses a wrong token, and signs in with a right one', async () => {
    await page.goto(`${base}/`);
    expect(new URL(page.url()).pathname).toBe('/console/sign-in');
    await expect(page.getByLabel('API token or JWT').getAttribute('type')).resolves.toBe('password');
    await shoot('sign-in');

    await page.getByLabel('API token or JWT').fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.getByRole('alert').textContent()).resolves.toContain('Sign-in refused');

    await page.getByLabel('API token or JWT').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${base}/console`);
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Mail');
    const cookies = await chrome.browser.cookies(base);
    const session = cookies.find((c) => c.name === 'postroom-console');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    expect(session?.value).not.toContain(TOKEN);
  });

  it('lists the mail newest first with status, sender, attachment count and age; filters find one', async () => {
    await page.goto(`${base}/console`);
    const items = page.locator('.mail-item');
    await expect(items.count()).resolves.toBe(3);
    const subjects = await page.locator('.mail-item .subject').allTextContents();
    expect(subjects[0]).toBe('Contract to file later');
    expect(subjects).toContain('Invoice November');
    const invoice = items.filter({ hasText: 'Invoice November' });
    await expect(invoice.textContent()).resolves.toMatch(
      /ana@example\.com[\s\S]*done[\s\S]*3 attachments[\s\S]*ago · 20\d\d-/,
    );
    // Every mail reached a final state (the parked mail's call is marked failed).
    await expect(page.locator('#processing-count').textContent()).resolves.toBe('0');
    await shoot('mail');

    await page.getByLabel('Text in subject or sender').fill('invoice');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect(page.locator('.mail-item .subject').allTextContents()).resolves.toEqual([
      'Invoice November',
    ]);
    await page.getByLabel('Status').selectOption('processing');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect(page.locator('.mail-item').count()).resolves.toBe(0);
    await expect(page.locator('.empty').textContent()).resolves.toContain('No mail matches these filters');
    await page.getByRole('link', { name: 'Clear' }).click();
    await page.getByLabel('Sender', { exact: true }).fill('@example.com');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect(page.locator('.mail-item .subject').allTextContents()).resolves.toEqual([
      'Invoice November',
    ]);
  });

  it('shows one email: verdicts, reasons, thumbnail, Drive link, a download of the accepted file, none of the quarantined one', async () => {
    await page.goto(`${base}/console`);
    await page.getByRole('link', { name: 'Invoice November' }).click();
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Invoice November');
    const card = (name: string) =>
      page.locator('.attachment').filter({ has: page.getByRole('heading', { name }) });
    await expect(card('invoice.pdf').textContent()).resolves.toMatch(
      /accepted[\s\S]*application\/pdf[\s\S]*uploaded/,
    );
    await expect(card('scan.bin').textContent()).resolves.toMatch(/accepted[\s\S]*image\/png[\s\S]*64 × 48/);
    const thumbWidth = await card('scan.bin')
      .locator('img')
      .evaluate((img: { complete: boolean; naturalWidth: number }) => img.complete && img.naturalWidth);
    expect(thumbWidth).toBeGreaterThan(0);
    const quarantined = card('totally-safe.pdf');
    await expect(quarantined.textContent()).resolves.toMatch(
      /quarantined[\s\S]*Quarantined: not offered for download/,
    );
    await expect(quarantined.getByRole('link', { name: /Download/ }).count()).resolves.toBe(0);
    const driveHref = await card('invoice.pdf')
      .getByRole('link', { name: /Open in Drive/ })
      .getAttribute('href');
    const filed = drive.files().find((f) => f.mimeType !== FOLDER_MIME && f.name === 'invoice.pdf');
    expect(filed).toBeDefined();
    expect(driveHref).toContain(`/${filed!.id}/`);

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      card('invoice.pdf')
        .getByRole('link', { name: /Download/ })
        .click(),
    ]);
    expect(download.suggestedFilename()).toBe('invoice.pdf');
    expect((await readFile(await download.path())).equals(SMALL_PDF)).toBe(true);

    const timeline = await page.locator('.timeline li .event').allTextContents();
    expect(timeline[0]).toBe('email.received');
    expect(timeline).toEqual(
      expect.arrayContaining(['attachment.analyzed', 'attachment.uploaded', 'email.processed']),
    );
    expect(timeline.at(-1)).toBe('outbound.completed');
    await shoot('email');

    // The quarantined file's bytes are not handed out even to someone who knows the address.
    const id = await emailId('invoice-1@mail.example');
    const row = await t.db
      .selectFrom('attachments')
      .select('id')
      .where('email_id', '=', id!.id)
      .where('verdict', '=', 'quarantined')
      .executeTakeFirstOrThrow();
    const res = await page.request.get(`${base}/console/attachments/${row.id}/content`);
    expect(res.status()).toBe(403);
  });

  it('shows a subject, sender and file name full of HTML and script as text: nothing runs, nothing overflows', async () => {
    consoleErrors.length = 0; // a refused sign-in earlier logged its 401
    await page.goto(`${base}/console?q=${encodeURIComponent('<script>')}`);
    const link = page.locator('.mail-item .subject');
    await expect(link.count()).resolves.toBe(1);
    await expect(link.textContent()).resolves.toContain(HOSTILE_SUBJECT);
    await shoot('mail-hostile');
    await link.click();
    await expect(page.locator('h1').textContent()).resolves.toContain(HOSTILE_SUBJECT);
    // The right-to-left override shows as what it is instead of reversing "gpj.exe" into "exe.jpg".
    await expect(page.locator('h1').textContent()).resolves.toContain('[U+202E]gpj.exe');
    await expect(page.locator('.email-head .facts').textContent()).resolves.toContain('mallory@evil.example');
    // Filed under a safe name; the name as sent is shown too, as text.
    await expect(page.locator('.filename').textContent()).resolves.toBe('_img src=x onerror=alert(1)_.pdf');
    await expect(page.locator('.att-body').textContent()).resolves.toContain(`Sent as ${HOSTILE_FILE}`);
    // Only our own script element exists; no element came out of the mail's text.
    await expect(page.locator('script').count()).resolves.toBe(1);
    await expect(page.locator('img[src="x"], b').count()).resolves.toBe(0);
    await shoot('email-hostile');
    expect(dialogs).toEqual([]);
    expect(consoleErrors).toEqual([]);
  });

  it('replays a dead letter from its page: the outbound consumer calls the hook again and it succeeds', async () => {
    const parkedId = (await emailId('parked-1@mail.example'))!.id;
    await page.goto(`${base}/console/emails/${parkedId}`);
    const call = page.locator('#h-calls + .table-wrap tbody tr');
    const failed = await t.db
      .selectFrom('calls')
      .select(['status', 'attempts', 'last_status_code'])
      .where('email_id', '=', parkedId)
      .executeTakeFirstOrThrow();
    expect(failed).toMatchObject({ status: 'failed', last_status_code: 503 });
    const cells = () => call.locator('td').allTextContents();
    await expect(cells()).resolves.toEqual([
      'archive',
      'email.processed',
      'failed',
      String(failed.attempts),
      expect.stringMatching(/^503 OUTBOUND\.GAVE_UP/),
    ]);

    await page.goto(`${base}/console/dead-letters`);
    const letter = page.locator('.dead-letter');
    await expect(letter.count()).resolves.toBe(1);
    await expect(letter.locator('.reason').textContent()).resolves.toContain('OUTBOUND.GAVE_UP');
    await expect(letter.getByRole('link', { name: 'Its email' }).getAttribute('href')).resolves.toBe(
      `/console/emails/${parkedId}`,
    );
    await shoot('dead-letters');

    // Without the form's CSRF token, the same POST from the same page and session is refused.
    const action = await letter.locator('form').getAttribute('action');
    const forged = await page.evaluate(
      `fetch(${JSON.stringify(action)}, { method: 'POST', body: new URLSearchParams({ other: '1' }) }).then((r) => r.status)`,
    );
    expect(forged).toBe(403);
    await expect(
      t.db.selectFrom('dead_letters').select('replayed_at').executeTakeFirstOrThrow(),
    ).resolves.toEqual({ replayed_at: null });
    const before = hook.requests.length;

    hook.reply({ status: 204 });
    await letter.getByRole('button', { name: /Replay/ }).click();
    await expect(page.getByRole('status').textContent()).resolves.toContain('was put back on its queue');
    await expect(page.locator('.dead-letter').count()).resolves.toBe(0);
    await waitFor(
      async () =>
        (await t.db.selectFrom('calls').select('status').where('email_id', '=', parkedId).executeTakeFirst())
          ?.status === 'succeeded',
      15_000,
      'replayed call succeeded',
    );
    expect(hook.requests.length).toBe(before + 1);
    await page.goto(`${base}/console/emails/${parkedId}`);
    await expect(cells()).resolves.toEqual([
      'archive',
      'email.processed',
      'succeeded',
      String(failed.attempts + 1),
      '204',
    ]);
    const events = await page.locator('.timeline li .event').allTextContents();
    expect(events).toContain('dead-letter.replayed');
    expect(events.at(-1)).toBe('outbound.completed');
  });

  it('shows stats with a bar per stage, and is keyboard usable from the first Tab', async () => {
    await page.goto(`${base}/console/stats`);
    // Everything was processed: no queue chart, but each stage's states as one stacked bar.
    await expect(page.getByText('Every queue is empty').count()).resolves.toBe(1);
    await expect(page.locator('.stage-card svg.stack').first().getAttribute('aria-label')).resolves.toBe(
      'done 3',
    );
    await expect(page.locator('.stage-card svg.stack rect.seg-quarantined').count()).resolves.toBe(1);
    await expect(page.locator('.stage-card').first().textContent()).resolves.toMatch(/Emails[\s\S]*done\s*3/);
    await shoot('stats');
    await page.keyboard.press('Tab');
    await expect(page.evaluate('document.activeElement.textContent')).resolves.toBe('Skip to content');
  });

  it('answers with strict security headers and refuses POSTs without a CSRF token', async () => {
    const res = await fetch(`${base}/console/sign-in`);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(res.headers.get('content-security-policy')).not.toContain('unsafe-inline');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    const setCookie = res.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);

    // A sign-in POST without its form token is refused before the token is even looked at.
    const noCsrf = await fetch(`${base}/console/sign-in`, {
      method: 'POST',
      body: new URLSearchParams({ token: TOKEN }),
      redirect: 'manual',
    });
    expect(noCsrf.status).toBe(403);
    expect(noCsrf.headers.get('set-cookie') ?? '').not.toContain('postroom-console=');

    // A signed-in browser's cookie alone does not make a sign-out or a replay.
    const cookie = (await chrome.browser.cookies(base)).map((c) => `${c.name}=${c.value}`).join('; ');
    const signOut = await fetch(`${base}/console/sign-out`, {
      method: 'POST',
      headers: { cookie },
      body: new URLSearchParams({}),
      redirect: 'manual',
    });
    expect(signOut.status).toBe(403);
  });

  it('signs out, after which the pages send the browser back to sign in', async () => {
    await page.goto(`${base}/console`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/console\/sign-in/);
    await expect(page.getByRole('status').textContent()).resolves.toContain('signed out');
    await page.goto(`${base}/console/stats`);
    expect(new URL(page.url()).pathname).toBe('/console/sign-in');
    expect(new URL(page.url()).searchParams.get('next')).toBe('/console/stats');
  });

  it('limits failed sign-ins per address like the API', async () => {
    const statuses: number[] = [];
    // Stops at the first 429: the bucket holds two and refills one every 30 s, so it empties at once
    // however slowly the attempts go.
    for (let i = 0; i < 20 && statuses.at(-1) !== 429; i++) {
      await page.goto(`${base}/console/sign-in`);
      await page.getByLabel('API token or JWT').fill(`wrong-${i}`);
      const [res] = await Promise.all([
        page.waitForResponse((r) => r.request().method() === 'POST'),
        page.getByRole('button', { name: 'Sign in' }).click(),
      ]);
      statuses.push(res.status());
    }
    expect(statuses).toContain(401);
    expect(statuses.at(-1)).toBe(429);
    await expect(page.getByRole('alert').textContent()).resolves.toContain('Too many failed sign-ins');
  });
});
