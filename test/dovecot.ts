import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ImapFlow } from 'imapflow';
import { findDovecot as locate, launchDovecot, type DovecotTls } from '../scripts/throwaway-dovecot.js';
import { startDovecotContainer } from './dovecot-container.js';

export type { DovecotTls } from '../scripts/throwaway-dovecot.js';

const run = promisify(execFile);

/**
 * One throwaway Dovecot server (plain text unless started with `tls`, one passwd-file user, maildir):
 * on this machine's loopback, or in a container of its own (TEST_DOVECOT=container).
 */
export interface DovecotServer {
  /** 127.0.0.1 (or, with a remote container engine, that machine). */
  host: string;
  /** The random free port it listens on (plain IMAP: use `IMAP_SECURE=false`; STARTTLS in TLS mode). */
  port: number;
  /** In TLS mode (`startDovecot({ tls: true })`), its TLS port and CA file; null otherwise. */
  tls: DovecotTls | null;
  /** The one user. */
  user: string;
  /** Its password. */
  password: string;
  /** Opens a connected imapflow client for the user (log it out when done). */
  client(): Promise<ImapFlow>;
  /** Appends a raw message through IMAP; resolves with its UID (Dovecot has UIDPLUS). */
  append(
    raw: string | Buffer,
    options?: { mailbox?: string; flags?: string[]; date?: Date },
  ): Promise<number>;
  /** Creates a mailbox (no error when it exists). */
  createMailbox(mailbox: string): Promise<void>;
  /** Every message of a mailbox: UID, flags and Message-ID (empty list when the mailbox is missing). */
  messages(mailbox?: string): Promise<Array<{ uid: number; flags: string[]; messageId: string }>>;
  /** The mailbox's current UIDVALIDITY, as a decimal string. */
  uidValidity(mailbox?: string): Promise<string>;
  /** Gives the mailbox a new UIDVALIDITY (with `doveadm mailbox update`); resolves with it. */
  changeUidValidity(mailbox?: string): Promise<string>;
  /** The server's log (for failing tests). */
  log(): Promise<string>;
  /** Stops the server and removes its directory (or its container). */
  stop(): Promise<void>;
}

/** What startDovecot needs of a server, wherever it runs. */
type Started = Pick<
  DovecotServer,
  'host' | 'port' | 'tls' | 'user' | 'password' | 'client' | 'log' | 'stop'
> & {
  /** Runs doveadm on the server's configuration. */
  doveadm(args: string[]): Promise<void>;
};

/** A Dovecot on this machine (`scripts/throwaway-dovecot.ts`). */
async function startLocal(options: { user: string; password?: string; tls?: boolean }): Promise<Started> {
  if (!locate()) {
    // test/global-setup.ts says why the container path is not taken when it was looked for.
    const why = process.env['TEST_DOVECOT_UNAVAILABLE'];
    throw new Error(
      'Dovecot is not installed (no /usr/sbin/dovecot): run scripts/install-dovecot.sh, or make Docker ' +
        `available, and the tests run it in a container${why ? `. ${why}` : ''}`,
    );
  }
  const base = await launchDovecot(options);
  const doveadm = base.bin.replace(/dovecot$/, 'doveadm').replace('/sbin/', '/bin/');
  return {
    ...base,
    doveadm: async (args) => {
      await run(doveadm, ['-c', base.conf, ...args]);
    },
    log: () => readFile(join(base.dir, 'dovecot.log'), 'utf8').catch(() => ''),
  };
}

/**
 * Starts a Dovecot of its own for one test file (a random free port, a passwd-file user, maildir in a
 * temporary directory) with what tests need on top. `tls: true` adds a TLS port and STARTTLS with a
 * certificate from a throwaway CA (`tls.caFile`). It runs on this machine (`scripts/throwaway-dovecot.ts`)
 * or, with TEST_DOVECOT=container (test/global-setup.ts sets it when no dovecot is installed and a
 * container engine answers), in a container of its own (`test/dovecot-container.ts`); the tests see
 * no difference. Throws a clear error when Dovecot (or, for `tls`, openssl) is not available.
 */
export async function startDovecot(
  options: { user?: string; password?: string; tls?: boolean } = {},
): Promise<DovecotServer> {
  const wanted = { user: options.user ?? 'postroom', password: options.password, tls: options.tls };
  const base =
    process.env['TEST_DOVECOT'] === 'container'
      ? await startDovecotContainer(wanted)
      : await startLocal(wanted);
  const { user } = base;
  const withClient = async <T>(fn: (c: ImapFlow) => Promise<T>): Promise<T> => {
    const c = await base.client();
    try {
      return await fn(c);
    } finally {
      await c.logout().catch(() => c.close());
    }
  };

  const server: DovecotServer = {
    host: base.host,
    port: base.port,
    tls: base.tls,
    user,
    password: base.password,
    client: () => base.client(),
    append: (raw, opts = {}) =>
      withClient(async (c) => {
        const mailbox = opts.mailbox ?? 'INBOX';
        if (mailbox !== 'INBOX') await c.mailboxCreate(mailbox).catch(() => undefined);
        const res = await c.append(mailbox, raw, opts.flags ?? [], opts.date);
        if (!res || !res.uid) throw new Error(`append to ${mailbox} returned no UID`);
        return res.uid;
      }),
    createMailbox: (mailbox) =>
      withClient(async (c) => {
        await c.mailboxCreate(mailbox);
      }),
    messages: (mailbox = 'INBOX') =>
      withClient(async (c) => {
        const st = await c.status(mailbox, { messages: true }).catch(() => false as const);
        if (!st || !st.messages) return [];
        await c.mailboxOpen(mailbox, { readOnly: true });
        // A flag change made meanwhile by another session (the poller's \Seen) can come as an
        // unsolicited FETCH without the UID: only the answers to this FETCH are the messages.
        const list = (await c.fetchAll('1:*', { uid: true, flags: true, envelope: true })).filter((m) =>
          Number.isInteger(m.uid),
        );
        return list.map((m) => ({
          uid: m.uid,
          flags: [...(m.flags ?? [])],
          messageId: (m.envelope?.messageId ?? '').replace(/^<|>$/g, ''),
        }));
      }),
    uidValidity: (mailbox = 'INBOX') =>
      withClient(async (c) => {
        const st = await c.status(mailbox, { uidValidity: true });
        return String(st ? st.uidValidity : '');
      }),
    async changeUidValidity(mailbox = 'INBOX') {
      const current = BigInt(await server.uidValidity(mailbox));
      const next = String(current + 1000n + BigInt(Math.floor(Math.random() * 1000)));
      await base.doveadm(['mailbox', 'update', '-u', user, '--uid-validity', next, mailbox]);
      return next;
    },
    log: () => base.log(),
    stop: () => base.stop(),
  };
  return server;
}

/** `IMAP_*` variables pointing at a test server (plain IMAP, 1-second probes), for `loadConfig`. */
export function imapEnv(
  server: DovecotServer,
  overrides: Record<string, string> = {},
): Record<string, string> {
  return {
    ROLES: 'imap',
    IMAP_HOST: server.host,
    IMAP_PORT: String(server.port),
    IMAP_SECURE: 'false',
    IMAP_USER: server.user,
    IMAP_PASSWORD: server.password,
    IMAP_POLL_SECONDS: '1',
    ...overrides,
  };
}
