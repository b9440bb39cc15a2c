import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../test/broker.js';
import { imapPollerHarness } from '../../test/imap-poller-harness.js';
import * as corpus from '../../test/mail-corpus.js';
import { imapWatchdogResyncsTotal } from './imap-metrics.js';

const h = imapPollerHarness('imap');
const { startPoller, stopPoller, emailsOf, emailByMessageId, checkpoint } = h;

const attachmentsOf = (emailId: string) =>
  h.tdb.db.selectFrom('attachments').selectAll().where('email_id', '=', emailId).orderBy('seq').execute();
const outboxOf = (emailId: string) =>
  h.tdb.db.selectFrom('outbox').selectAll().where('correlation_id', '=', emailId).orderBy('id').execute();

describe('IMAP poller against Dovecot', () => {
  it('records mail appended while it idles: email, attachments, timeline, outbox, then \\Seen', async () => {
    // A 30 s watchdog period: mail seen within 10 s can only have come through IDLE.
    const poller = await startPoller('idle', { IMAP_POLL_SECONDS: '30' });
    await waitFor(() => poller.health().state === 'idle', 10_000, 'poller idling');
    const resyncsBefore = (await imapWatchdogResyncsTotal.get()).values[0]?.value ?? 0;
    const uid = await h.dove.append(corpus.nestedMultipartMessage({ messageId: 'idle-1@test' }), {
      mailbox: 'idle',
    });

    const email = await waitFor(() => emailByMessageId('idle-1@test'), 10_000, 'email recorded');
    expect(email).toMatchObject({
      source: 'imap',
      mailbox: 'idle',
      uid,
      status: 'processing',
      subject: 'Grüße & report',
    });
    expect(email.from_address).toBe('alice@example.com');
    const atts = await attachmentsOf(email.id);
    expect(atts.map((a) => [a.filename, a.disposition, a.verdict, a.drive_status])).toEqual([
      ['logo.png', 'inline', 'pending', 'pending'],
      ['report.pdf', 'attachment', 'pending', 'pending'],
    ]);
    expect(atts[1]!.sha256).toBe(corpus.sha256(corpus.SMALL_PDF));
    expect(await h.blobs.read(atts[1]!.sha256)).toEqual(corpus.SMALL_PDF);
    const outbox = await outboxOf(email.id);
    expect(outbox.map((o) => o.routing_key)).toEqual([
      'email.received',
      'attachment.stored',
      'attachment.stored',
    ]);
    expect(JSON.parse(outbox[0]!.body).data).toMatchObject({
      emailId: email.id,
      messageId: 'idle-1@test',
      attachmentCount: 2,
    });
    const timeline = await h.tdb.db
      .selectFrom('timeline')
      .select('event')
      .where('email_id', '=', email.id)
      .execute();
    expect(timeline.map((t) => t.event)).toContain('email.received');

    await waitFor(async () => (await emailByMessageId('idle-1@test'))?.imap_after_at, 5_000, 'imap_after_at');
    expect((await h.dove.messages('idle'))[0]?.flags).toContain('\\Seen');
    expect(poller.health()).toMatchObject({
      connected: true,
      ready: true,
      idleSupported: true,
      lastUid: uid,
    });
    expect((await imapWatchdogResyncsTotal.get()).values[0]?.value ?? 0).toBe(resyncsBefore);
  });

  it('fetches mail that arrived while it was stopped, at the next start', async () => {
    const first = await startPoller('offline');
    await h.dove.append(corpus.plainTextMessage({ messageId: 'off-1@test' }), { mailbox: 'offline' });
    await waitFor(() => emailByMessageId('off-1@test'), 10_000, 'first email');
    await stopPoller(first);
    expect(first.health().state).toBe('stopped');

    await h.dove.append(corpus.plainTextMessage({ messageId: 'off-2@test' }), { mailbox: 'offline' });
    await h.dove.append(corpus.emptyAttachmentMessage({ messageId: 'off-3@test' }), { mailbox: 'offline' });
    await startPoller('offline');
    await waitFor(async () => (await emailsOf('offline')).length === 3, 10_000, 'three emails');
    await waitFor(async () => (await checkpoint('offline'))?.lastUid === 3, 5_000, 'checkpoint at UID 3');
  });

  it('IMAP_START=new leaves the mail already there alone at the first start, and records what comes after', async () => {
    await h.dove.createMailbox('start-new');
    await h.dove.append(corpus.plainTextMessage({ messageId: 'old-1@test' }), { mailbox: 'start-new' });
    await h.dove.append(corpus.plainTextMessage({ messageId: 'old-2@test' }), { mailbox: 'start-new' });
    const first = await startPoller('start-new', { IMAP_START: 'new' });
    await waitFor(() => first.health().lastSyncAt, 10_000, 'first sync');
    await h.dove.append(corpus.plainTextMessage({ messageId: 'new-1@test' }), { mailbox: 'start-new' });
    await waitFor(() => emailByMessageId('new-1@test'), 10_000, 'the new mail');
    await stopPoller(first);

    // Only the first start skips: mail that arrives while it is stopped is recorded at the next start.
    await h.dove.append(corpus.plainTextMessage({ messageId: 'new-2@test' }), { mailbox: 'start-new' });
    await startPoller('start-new', { IMAP_START: 'new' });
    await waitFor(() => emailByMessageId('new-2@test'), 10_000, 'mail from while it was stopped');
    expect((await emailsOf('start-new')).map((e) => e.uid)).toEqual([3, 4]);
    const flags = new Map((await h.dove.messages('start-new')).map((m) => [m.messageId, m.flags]));
    expect(flags.get('<old-1@test>') ?? flags.get('old-1@test')).not.toContain('\\Seen');
    expect(flags.get('<old-2@test>') ?? flags.get('old-2@test')).not.toContain('\\Seen');
  });

  it('closes a mail without attachments as it records it, with no consumer running', async () => {
    await startPoller('no-files');
    await h.dove.append(corpus.plainTextMessage({ messageId: 'plain-1@test' }), { mailbox: 'no-files' });
    const email = await waitFor(() => emailByMessageId('plain-1@test'), 10_000, 'email recorded');
    // Nothing to analyse or file: done in the transaction that recorded it.
    expect(email.status).toBe('done');
    expect(email.done_at).toEqual(email.created_at);
    const outbox = await outboxOf(email.id);
    expect(outbox.map((o) => o.routing_key)).toEqual(['email.received', 'email.processed']);
    expect(JSON.parse(outbox[1]!.body).data).toMatchObject({
      emailId: email.id,
      messageId: 'plain-1@test',
      source: 'imap',
      attachments: [],
    });
    const timeline = await h.tdb.db
      .selectFrom('timeline')
      .select(['stage', 'event'])
      .where('email_id', '=', email.id)
      .where('event', '!=', 'imap.after') // the flag set after the commit
      .orderBy('id')
      .execute();
    expect(timeline).toEqual([
      { stage: 'ingest', event: 'email.received' },
      { stage: 'ingest', event: 'email.processed' },
    ]);
  });

  it('records the same Message-ID twice as one email, and flags both copies', async () => {
    await startPoller('dupes');
    await h.dove.append(corpus.plainTextMessage({ messageId: 'dup-1@test' }), { mailbox: 'dupes' });
    await h.dove.append(corpus.plainTextMessage({ messageId: 'dup-1@test', subject: 'again' }), {
      mailbox: 'dupes',
    });
    await waitFor(async () => (await checkpoint('dupes'))?.lastUid === 2, 10_000, 'both UIDs handled');
    const emails = await emailsOf('dupes');
    expect(emails).toHaveLength(1);
    expect((await outboxOf(emails[0]!.id)).filter((o) => o.routing_key === 'email.received')).toHaveLength(1);
    await waitFor(
      async () => (await h.dove.messages('dupes')).every((m) => m.flags.includes('\\Seen')),
      5_000,
      'both seen',
    );
  });

  it('records every tricky corpus message, warnings kept, nothing dropped', async () => {
    const messages: Array<[string, Buffer]> = [
      ['c-nested@test', corpus.nestedMultipartMessage({ messageId: 'c-nested@test' })],
      ['c-fwd@test', corpus.forwardedMessage({ messageId: 'c-fwd@test' })],
      ['c-fwd2@test', corpus.doubleForwardedMessage({ messageId: 'c-fwd2@test' })],
      ['c-names@test', corpus.encodedFilenamesMessage({ messageId: 'c-names@test' })],
      ['c-cut@test', corpus.missingClosingBoundaryMessage({ messageId: 'c-cut@test' })],
      ['c-b64@test', corpus.badBase64Message({ messageId: 'c-b64@test' })],
      ['c-empty@test', corpus.emptyAttachmentMessage({ messageId: 'c-empty@test' })],
      ['c-hostile@test', corpus.hostileFilenamesMessage({ messageId: 'c-hostile@test' })],
      ['c-notes@test', corpus.inlineTextFileMessage({ messageId: 'c-notes@test' })],
    ];
    for (const [, raw] of messages) await h.dove.append(raw, { mailbox: 'corpus' });
    await h.dove.append(corpus.noMessageIdMessage({ subject: 'corpus no id' }), { mailbox: 'corpus' });
    await startPoller('corpus');
    await waitFor(
      async () => (await checkpoint('corpus'))?.lastUid === messages.length + 1,
      20_000,
      'every message handled',
    );

    const emails = await emailsOf('corpus');
    expect(emails).toHaveLength(messages.length + 1);
    const byId = new Map(emails.map((e) => [e.message_id, e]));
    for (const [id] of messages) expect(byId.has(id), id).toBe(true);
    expect(emails.find((e) => e.subject === 'corpus no id')?.message_id).toMatch(/@postroom\.invalid$/);

    const fwd = await attachmentsOf(byId.get('c-fwd@test')!.id);
    const eml = fwd.find((a) => a.declared_type === 'message/rfc822');
    expect(fwd.filter((a) => a.parent_id === eml?.id).map((a) => a.original_filename)).toEqual([
      'numbers.csv',
      'chart.png',
    ]);
    const names = await attachmentsOf(byId.get('c-names@test')!.id);
    expect(names.map((a) => a.original_filename)).toEqual(corpus.ENCODED_FILENAMES);
    for (const id of ['c-cut@test', 'c-b64@test'])
      expect(JSON.parse(byId.get(id)!.warnings), id).not.toEqual([]);
    for (const e of emails) expect((await outboxOf(e.id)).length).toBe(1 + e.attachment_count);
  });

  it('IMAP_AFTER move:<folder> creates the folder and moves the mail after the commit', async () => {
    await startPoller('move-src', { IMAP_AFTER: 'move:Processed' });
    await h.dove.append(corpus.plainTextMessage({ messageId: 'move-1@test' }), { mailbox: 'move-src' });
    await waitFor(async () => (await emailByMessageId('move-1@test'))?.imap_after_at, 10_000, 'moved');
    expect(await h.dove.messages('move-src')).toEqual([]);
    expect((await h.dove.messages('Processed')).map((m) => m.messageId)).toEqual(['move-1@test']);
  });

  it('IMAP_AFTER none leaves the mail unread', async () => {
    await startPoller('after-none', { IMAP_AFTER: 'none' });
    await h.dove.append(corpus.plainTextMessage({ messageId: 'none-1@test' }), { mailbox: 'after-none' });
    await waitFor(async () => (await emailByMessageId('none-1@test'))?.imap_after_at, 10_000, 'marked');
    expect((await h.dove.messages('after-none'))[0]?.flags).not.toContain('\\Seen');
  });

  it('records a message over the message bound from its headers only, with a warning', async () => {
    // ATTACHMENT_MAX_BYTES 1000: the message bound is 2 * 1000 + 1 MiB.
    await startPoller('oversize', { ATTACHMENT_MAX_BYTES: '1000' });
    const big = corpus.largeAttachmentMessage(1_200_000, 3, { messageId: 'huge-1@test', subject: 'Too big' });
    await h.dove.append(Buffer.concat(await big.stream().toArray()), { mailbox: 'oversize' });
    const email = await waitFor(
      async () => (await emailByMessageId('huge-1@test'))?.imap_after_at && emailByMessageId('huge-1@test'),
      10_000,
      'oversize recorded',
    );
    expect(email).toMatchObject({ subject: 'Too big', attachment_count: 0, size: big.rawSize });
    expect(JSON.parse(email!.warnings)[0]).toMatch(/over the 1050576-byte message bound/);
    expect((await h.dove.messages('oversize'))[0]?.flags).toContain('\\Seen');
  });

  it('streams a 20 MiB attachment into the blob store (memory growth reported)', async () => {
    const size = 20 * 1024 * 1024;
    const big = corpus.largeAttachmentMessage(size, 11, { messageId: 'big-20m@test' });
    // The test needs the raw message whole for APPEND; it is dropped and collected before measuring.
    await h.dove.append(Buffer.concat(await big.stream().toArray()), { mailbox: 'big' });
    const expected = await corpus.digestStream(big.attachmentBytes());
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const used = () => {
      const m = process.memoryUsage();
      return { rss: m.rss, js: m.heapUsed + m.arrayBuffers };
    };
    for (let i = 0; i < 3; i += 1) {
      await new Promise((r) => setTimeout(r, 50));
      gc();
    }
    const before = used();
    const peak = { ...before };
    const sampler = setInterval(() => {
      const m = used();
      peak.rss = Math.max(peak.rss, m.rss);
      peak.js = Math.max(peak.js, m.js);
    }, 10);
    const started = Date.now();
    try {
      const poller = await startPoller('big');
      const email = await waitFor(() => emailByMessageId('big-20m@test'), 60_000, '20 MiB email');
      await stopPoller(poller);
      const [att] = await attachmentsOf(email.id);
      expect(att).toMatchObject({ filename: 'big.bin', size, sha256: expected.sha256, stored: 1 });
      expect(await h.blobs.stat(expected.sha256)).toEqual({ sha256: expected.sha256, size });
    } finally {
      clearInterval(sampler);
    }
    const took = Date.now() - started;
    for (let i = 0; i < 3; i += 1) {
      await new Promise((r) => setTimeout(r, 50));
      gc();
    }
    const after = used();
    const mib = (n: number) => `${n < 0 ? '-' : '+'}${(Math.abs(n) / 1024 / 1024).toFixed(1)} MiB`;
    console.log(
      `20 MiB attachment (${(big.rawSize / 1024 / 1024).toFixed(1)} MiB raw message) processed in ${took} ms; growth over the start: ` +
        `peak RSS ${mib(peak.rss - before.rss)}, peak heap+buffers ${mib(peak.js - before.js)} (garbage included), ` +
        `retained after GC ${mib(after.js - before.js)}`,
    );
    // Streaming: the process never holds the message, let alone several copies of it.
    expect(after.js - before.js).toBeLessThan(size / 2);
  });
});
