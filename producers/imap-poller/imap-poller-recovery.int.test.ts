import { createServer, connect, type Server, type Socket } from 'node:net';
import { Transform } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { BlobStore } from '../../infra/blobs/blob-store.js';
import { waitFor } from '../../test/broker.js';
import { imapPollerHarness } from '../../test/imap-poller-harness.js';
import { nestedMultipartMessage, plainTextMessage } from '../../test/mail-corpus.js';
import { PermanentError, RetryableError } from '../../infra/errors.js';
import { imapReconnectsTotal, imapWatchdogResyncsTotal } from './imap-metrics.js';
import { MAX_MESSAGE_ATTEMPTS } from './mailbox-sync.js';

const h = imapPollerHarness('imaprec');
const { startPoller, stopPoller, emailsOf, emailByMessageId, checkpoint } = h;

const reconnects = async () => (await imapReconnectsTotal.get()).values[0]?.value ?? 0;
const mail = (id: string) => plainTextMessage({ messageId: id, subject: id });

/**
 * A proxy on 127.0.0.1 in front of Dovecot (at `host`, where the test server is) that can freeze its
 * open connections (bytes stop flowing, nothing is closed: a silent network) or swallow the server's
 * `* N EXISTS` lines (an IDLE that never announces new mail).
 */
async function startFaultyProxy(host: string, port: number) {
  const pairs: Array<[Socket, Socket]> = [];
  const sockets = new Set<Socket>();
  let dropExists = false;
  const server: Server = createServer((client) => {
    const upstream = connect(port, host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
    }
    let partial = '';
    const filter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        const lines = (partial + chunk.toString('latin1')).split(/(?<=\n)/);
        partial = lines.at(-1)?.endsWith('\n') ? '' : (lines.pop() ?? '');
        const kept = lines.filter((l) => !(dropExists && /^\* \d+ EXISTS\r?\n$/.test(l)));
        done(null, Buffer.from(kept.join(''), 'latin1'));
      },
    });
    client.pipe(upstream);
    upstream.pipe(filter).pipe(client);
    pairs.push([client, upstream]);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    dropExists(on: boolean) {
      dropExists = on;
    },
    freeze() {
      for (const [client, upstream] of pairs.splice(0)) {
        client.unpipe();
        upstream.unpipe();
        client.pause();
        upstream.pause();
      }
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('IMAP poller recovery', () => {
  it('scans again after a UIDVALIDITY change, without duplicates', async () => {
    const poller = await startPoller('uidv');
    await h.dove.append(mail('uidv-1@test'), { mailbox: 'uidv' });
    await h.dove.append(mail('uidv-2@test'), { mailbox: 'uidv' });
    await waitFor(async () => (await emailsOf('uidv')).length === 2, 10_000, 'two emails');
    const before = (await checkpoint('uidv'))!.uidValidity;

    const uidValidity = await h.dove.changeUidValidity('uidv');
    expect(uidValidity).not.toBe(before);
    await h.dove.append(mail('uidv-3@test'), { mailbox: 'uidv' });

    await waitFor(
      async () => (await checkpoint('uidv'))?.uidValidity === uidValidity,
      15_000,
      'checkpoint under the new UIDVALIDITY',
    );
    // Dovecot may renumber the messages under the new UIDVALIDITY: the rescan ends at the highest UID.
    const highest = Math.max(...(await h.dove.messages('uidv')).map((m) => m.uid));
    await waitFor(
      async () => (await checkpoint('uidv'))?.lastUid === highest,
      10_000,
      `rescan to UID ${highest}`,
    );
    const emails = await emailsOf('uidv');
    expect(emails.map((e) => e.message_id).sort()).toEqual(['uidv-1@test', 'uidv-2@test', 'uidv-3@test']);
    await waitFor(
      () => poller.health().uidValidity === uidValidity,
      10_000,
      'health under the new UIDVALIDITY',
    );
  });

  it('loses nothing and records nothing twice when it dies between the commit and the flag update', async () => {
    let crashed!: () => void;
    const crash = new Promise<void>((resolve) => (crashed = resolve));
    const first = await startPoller(
      'crash',
      {},
      {
        hooks: {
          afterRecord: () => {
            crashed();
            throw new Error('simulated crash right after the commit');
          },
        },
      },
    );
    await h.dove.append(mail('crash-1@test'), { mailbox: 'crash' });
    await crash;
    await stopPoller(first);

    // Committed, but neither the checkpoint nor the flag moved.
    const email = await emailByMessageId('crash-1@test');
    expect(email).toMatchObject({ uid: 1, imap_after_at: null });
    expect((await checkpoint('crash'))?.lastUid ?? 0).toBe(0);
    expect((await h.dove.messages('crash'))[0]?.flags).not.toContain('\\Seen');

    await h.dove.append(mail('crash-2@test'), { mailbox: 'crash' });
    await startPoller('crash');
    await waitFor(
      async () => (await checkpoint('crash'))?.lastUid === 2,
      10_000,
      'both UIDs handled after restart',
    );
    await waitFor(
      async () => (await emailByMessageId('crash-1@test'))?.imap_after_at,
      5_000,
      'flag applied after restart',
    );
    expect((await emailsOf('crash')).map((e) => e.message_id)).toEqual(['crash-1@test', 'crash-2@test']);
    const events = await h.tdb.db
      .selectFrom('outbox')
      .select('routing_key')
      .where('correlation_id', '=', email!.id)
      .execute();
    // A mail without attachments is closed as it is recorded: its two events, once each.
    expect(events.map((e) => e.routing_key).sort()).toEqual(['email.processed', 'email.received']);
    await waitFor(
      async () => (await h.dove.messages('crash')).every((m) => m.flags.includes('\\Seen')),
      5_000,
      'both seen',
    );
  });

  it('records a message that keeps failing from its headers after 3 attempts, and goes on', async () => {
    let puts = 0;
    const broken: BlobStore = {
      ...h.blobs,
      put: async () => {
        puts += 1;
        throw new PermanentError('BLOB.TEST', 'this store refuses every write');
      },
      putMany: async () => {
        puts += 1;
        throw new PermanentError('BLOB.TEST', 'this store refuses every write');
      },
    };
    await h.dove.append(nestedMultipartMessage({ messageId: 'poison-1@test', subject: 'Poison' }), {
      mailbox: 'poison',
    });
    await h.dove.append(mail('poison-2@test'), { mailbox: 'poison' });
    await startPoller('poison', {}, { blobs: broken });
    await waitFor(async () => (await checkpoint('poison'))?.lastUid === 2, 20_000, 'both handled');
    const email = await emailByMessageId('poison-1@test');
    expect(email).toMatchObject({ subject: 'Poison', attachment_count: 0 });
    expect(JSON.parse(email!.warnings)[0]).toMatch(
      /could not be processed after 3 attempts \(BLOB\.TEST: this store refuses every write\)/,
    );
    expect(puts).toBeGreaterThanOrEqual(MAX_MESSAGE_ATTEMPTS);
    expect(await emailByMessageId('poison-2@test')).toBeTruthy();
  });

  it('never lets the checkpoint or IMAP_AFTER pass a message of a batch that fails to record', async () => {
    // Fails only inside the email's transaction (where small attachment blobs are written), with a
    // retryable error, so the message is retried as it is and never falls back to its headers.
    let failing = true;
    let refused = 0;
    const flaky: BlobStore = {
      ...h.blobs,
      put: async (input, options) => {
        if (failing && options?.transaction) {
          refused += 1;
          throw new RetryableError('BLOB.TEST', 'the database refuses this email for now');
        }
        return h.blobs.put(input, options);
      },
      // the batch write of small blobs, also inside the email's transaction
      putMany: async (inputs, trx) => {
        if (failing) {
          refused += 1;
          throw new RetryableError('BLOB.TEST', 'the database refuses this email for now');
        }
        return h.blobs.putMany!(inputs, trx);
      },
    };
    await h.dove.append(mail('batch-1@test'), { mailbox: 'batch' });
    await h.dove.append(mail('batch-2@test'), { mailbox: 'batch' });
    await h.dove.append(nestedMultipartMessage({ messageId: 'batch-3@test', subject: 'Fails' }), {
      mailbox: 'batch',
    });
    await h.dove.append(mail('batch-4@test'), { mailbox: 'batch' });
    await startPoller('batch', {}, { blobs: flaky, maxBackoffMs: 500 });
    await waitFor(async () => refused >= 2, 15_000, 'the failing message tried twice');

    // The messages before it are committed, checkpointed and flagged; nothing at or after it is.
    const seen = async () =>
      Object.fromEntries(
        (await h.dove.messages('batch')).map((m) => [m.messageId, m.flags.includes('\\Seen')]),
      );
    expect((await emailsOf('batch')).map((e) => e.message_id)).toEqual(['batch-1@test', 'batch-2@test']);
    expect((await emailsOf('batch')).every((e) => e.imap_after_at !== null)).toBe(true);
    expect((await checkpoint('batch'))?.lastUid).toBe(2);
    expect(await seen()).toEqual({
      'batch-1@test': true,
      'batch-2@test': true,
      'batch-3@test': false,
      'batch-4@test': false,
    });

    failing = false;
    await waitFor(async () => (await checkpoint('batch'))?.lastUid === 4, 15_000, 'all four handled');
    await waitFor(
      async () => Object.values(await seen()).every(Boolean),
      5_000,
      'all four seen after the repair',
    );
    const emails = await emailsOf('batch');
    expect(emails.map((e) => e.message_id)).toEqual([
      'batch-1@test',
      'batch-2@test',
      'batch-3@test',
      'batch-4@test',
    ]);
    const fails = emails[2]!;
    expect(fails).toMatchObject({ subject: 'Fails', attachment_count: 2 });
    const atts = await h.tdb.db
      .selectFrom('attachments')
      .select('sha256')
      .where('email_id', '=', fails.id)
      .execute();
    for (const a of atts) expect(await h.blobs.stat(a.sha256)).not.toBeNull();
    for (const e of emails) {
      const received = await h.tdb.db
        .selectFrom('outbox')
        .select('routing_key')
        .where('correlation_id', '=', e.id)
        .where('routing_key', '=', 'email.received')
        .execute();
      expect(received, e.message_id).toHaveLength(1);
    }
  });

  it('notices a connection gone silent with its watchdog, reconnects and catches up', async () => {
    const proxy = await startFaultyProxy(h.dove.host, h.dove.port);
    try {
      const poller = await startPoller('quiet', { IMAP_HOST: '127.0.0.1', IMAP_PORT: String(proxy.port) });
      await waitFor(() => poller.health().state === 'idle', 10_000, 'idling');
      const failuresBefore = await reconnects();
      proxy.freeze();
      await h.dove.append(mail('quiet-1@test'), { mailbox: 'quiet' });
      // The probe gets no answer within 10 s: the session is dropped and a new connection made.
      await waitFor(() => emailByMessageId('quiet-1@test'), 30_000, 'mail after the reconnect');
      expect(await reconnects()).toBeGreaterThan(failuresBefore);
      await waitFor(() => poller.health().ready, 5_000, 'ready again');
    } finally {
      await proxy.close();
    }
  });

  it('resyncs when UIDNEXT moved but IDLE announced nothing', async () => {
    const proxy = await startFaultyProxy(h.dove.host, h.dove.port);
    try {
      const poller = await startPoller('mute', { IMAP_HOST: '127.0.0.1', IMAP_PORT: String(proxy.port) });
      await waitFor(() => poller.health().state === 'idle', 10_000, 'idling');
      const before = (await imapWatchdogResyncsTotal.get()).values[0]?.value ?? 0;
      proxy.dropExists(true);
      await h.dove.append(mail('mute-1@test'), { mailbox: 'mute' });
      await waitFor(() => emailByMessageId('mute-1@test'), 10_000, 'mail found by the watchdog');
      expect((await imapWatchdogResyncsTotal.get()).values[0]?.value ?? 0).toBeGreaterThan(before);
      expect(poller.health().consecutiveFailures).toBe(0);
    } finally {
      await proxy.close();
    }
  });
});
