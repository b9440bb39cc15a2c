import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { imapEnv, startDovecot, type DovecotServer, type DovecotTls } from '../../test/dovecot.js';
import { plainTextMessage } from '../../test/mail-corpus.js';
import { createTestVhost, freePort, spawnPostroom, type ChildPostroom } from '../../test/process.js';

/** The `imap` check of a /readyz answer. */
interface ImapCheck {
  ok: boolean;
  lastError: string | null;
}

/**
 * Postroom's default is TLS from the first byte, and real servers are often self-hosted with a
 * private CA. A real Postroom process (`dist/main.js`) against a Dovecot with a certificate from a
 * throwaway CA: mail is recorded over TLS and over STARTTLS when the CA is trusted through Node's
 * `NODE_EXTRA_CA_CERTS`, and without it nothing is recorded, the process stays up, and the log and
 * /readyz say what is wrong with the certificate and how to fix it.
 */
describe('IMAP over TLS with a private CA, in a real Postroom process', () => {
  let dove: DovecotServer;
  let tls: DovecotTls;
  let db: TestDatabase;
  let vhost: Awaited<ReturnType<typeof createTestVhost>>;
  let running: ChildPostroom | null = null;

  beforeAll(async () => {
    dove = await startDovecot({ tls: true });
    if (!dove.tls) throw new Error('startDovecot({ tls: true }) returned a server without TLS');
    tls = dove.tls;
    db = await createTestDatabase('imaptls');
    vhost = await createTestVhost();
  });
  afterEach(async () => {
    // The test's process is stopped after it, passed or failed.
    const p = running;
    running = null;
    if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
    p.child.kill('SIGTERM');
    const stopped = await Promise.race([p.exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (stopped === undefined) p.child.kill('SIGKILL');
  });
  afterAll(async () => {
    await dove?.stop();
    await db?.drop();
    await vhost?.drop();
  });

  /** Starts Postroom (`imap` role only) on its own mailbox of the server, with one mail in it. */
  async function start(mailbox: string, messageId: string, env: Record<string, string>) {
    await dove.append(plainTextMessage({ messageId }), { mailbox });
    const port = await freePort();
    const logFrom = (await dove.log()).length;
    running = spawnPostroom({
      ...imapEnv(dove, { IMAP_MAILBOX: mailbox, ...env }),
      AMQP_URL: vhost.url,
      MYSQL_URL: db.url,
      HTTP_PORT: String(port),
    });
    const p = running;
    return {
      p,
      /** The `imap` check of /readyz (null while the HTTP server is not up yet). */
      async imapCheck(): Promise<{ status: number; imap: ImapCheck } | null> {
        const r = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null);
        if (!r) return null;
        const body = (await r.json()) as { checks: { imap?: ImapCheck } };
        return body.checks.imap ? { status: r.status, imap: body.checks.imap } : null;
      },
      /** What Dovecot logged since this process was started. */
      dovecotLog: async () => (await dove.log()).slice(logFrom),
      /** The email recorded for the mail, once there is one. */
      recorded: () =>
        db.db
          .selectFrom('emails')
          .select(['message_id', 'mailbox', 'status'])
          .where('message_id', '=', messageId)
          .executeTakeFirst(),
      /** Fails with the process's output when it exits while a step waits. */
      alive: () => {
        if (p.child.exitCode !== null || p.child.signalCode !== null)
          throw new Error(`Postroom exited (${p.child.exitCode ?? p.child.signalCode}):\n${p.output()}`);
      },
    };
  }

  /** Waits for the email row, with the process's output and Dovecot's log in the failure message. */
  async function expectRecorded(s: Awaited<ReturnType<typeof start>>, mailbox: string) {
    const email = await waitFor(
      async () => {
        s.alive();
        return s.recorded();
      },
      15_000,
      'the email row',
    ).catch(async (err: unknown) => {
      throw new Error(
        `${(err as Error).message}\n--- Postroom:\n${s.p.output()}\n--- Dovecot:\n${await s.dovecotLog()}`,
      );
    });
    expect(email.mailbox).toBe(mailbox);
    const ready = await waitFor(async () => (await s.imapCheck())?.imap.ok, 10_000, 'imap ready');
    expect(ready).toBe(true);
  }

  it('records mail over TLS from the first byte (IMAP_SECURE=true) with the CA in NODE_EXTRA_CA_CERTS', async () => {
    const s = await start('Tls', 'tls-1@postroom.test', {
      IMAP_PORT: String(tls.port),
      IMAP_SECURE: 'true',
      NODE_EXTRA_CA_CERTS: tls.caFile,
    });
    await expectRecorded(s, 'Tls');
    // Dovecot saw Postroom (imapflow sends its name in ID) on a TLS connection.
    expect(await s.dovecotLog()).toMatch(/ID sent: name=postroom: .*, TLS, /);
  });

  it('upgrades with STARTTLS on the plain port (IMAP_SECURE=false) and records mail', async () => {
    const s = await start('Starttls', 'starttls-1@postroom.test', {
      IMAP_PORT: String(dove.port),
      IMAP_SECURE: 'false',
      NODE_EXTRA_CA_CERTS: tls.caFile,
    });
    await expectRecorded(s, 'Starttls');
    // The plain port carries TLS only after STARTTLS; without it Dovecot would write `secured`
    // (a loopback connection) where it writes `TLS`. imapflow sends ID after the upgrade.
    const log = await s.dovecotLog();
    expect(log).toMatch(/ID sent: name=postroom: .*, TLS, /);
    expect(log).not.toMatch(/ID sent: name=postroom: .*, secured, /);
  });

  it.each([
    { mode: 'TLS', secure: 'true', port: () => tls.port },
    { mode: 'STARTTLS', secure: 'false', port: () => dove.port },
  ])(
    'without the CA trusted ($mode), records nothing, stays up and says why in the log and /readyz',
    async ({ mode, secure, port }) => {
      const mailbox = `Untrusted${mode}`;
      const s = await start(mailbox, `untrusted-${mode.toLowerCase()}@postroom.test`, {
        IMAP_PORT: String(port()),
        IMAP_SECURE: secure,
      });
      // What an operator reads: which server, what is wrong with its certificate, and the fix. Node's
      // own wording sits between the two parts (Node 24 adds a hint of its own to it).
      const server = `IMAP server certificate refused for ${dove.host}:${port()} (${mode}): unable to verify the first certificate`;
      const reasonAndFix =
        '(UNABLE_TO_VERIFY_LEAF_SIGNATURE); if the server uses a private or self-signed CA, ' +
        'start Postroom with NODE_EXTRA_CA_CERTS=/path/to/ca.pem';
      const says = (text: string) => text.includes(server) && text.includes(reasonAndFix);
      const errorLines = () =>
        s.p
          .output()
          .split('\n')
          .filter(says)
          .map((l) => JSON.parse(l) as { level: string; module: string; attempt: number });
      // Two failed attempts, the second after the backoff: the process keeps trying, and stays up.
      await waitFor(
        () => {
          s.alive();
          return errorLines().length >= 2;
        },
        30_000, // a real process starting on a busy machine: the start-up takes most of it
        'two certificate errors in the log',
      );
      expect(errorLines()[0]).toMatchObject({ level: 'error', module: 'imap-poller', attempt: 1 });
      const check = await waitFor(() => s.imapCheck(), 5_000, '/readyz');
      expect(check.status).toBe(503);
      expect(check.imap.ok).toBe(false);
      expect(check.imap.lastError).toContain(server);
      expect(check.imap.lastError).toContain(reasonAndFix);
      s.alive();
      // Backoff, not a busy loop: 1 s, then 2 s, between the attempts.
      expect(errorLines().length).toBeLessThanOrEqual(3);
      // Nothing was recorded, and Postroom never got as far as logging in (no fallback to plain text).
      expect(await s.recorded()).toBeUndefined();
      expect(s.p.output()).not.toContain('IMAP mailbox opened');
      expect(await s.dovecotLog()).not.toContain('name=postroom');
    },
  );
});
