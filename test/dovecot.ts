import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ImapFlow } from 'imapflow';

const run = promisify(execFile);

/**
 * Runs `dovecot` (which forks its daemon and exits) with stdio detached: the daemon would otherwise
 * inherit our pipes and `execFile` would wait for it forever.
 */
function runDetached(bin: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${bin} ${args.join(' ')} exited with ${code ?? signal}`)),
    );
  });
}

/** Where Debian's `dovecot-imapd` puts the binaries; `scripts/install-dovecot.sh` installs them. */
const DOVECOT_CANDIDATES = ['/usr/sbin/dovecot', '/usr/local/sbin/dovecot'];

/** One throwaway Dovecot server (loopback, plain text, one passwd-file user, maildir). */
export interface DovecotServer {
  /** Always 127.0.0.1. */
  host: string;
  /** The random free port it listens on (plain IMAP: use `IMAP_SECURE=false`). */
  port: number;
  /** The one user. */
  user: string;
  /** Its password. */
  password: string;
  /** The temporary directory holding the configuration, the mail and the log. */
  dir: string;
  /** Path of the configuration file (`dovecot -c <conf>`). */
  conf: string;
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
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
}

/** Finds the dovecot binary or throws telling how to install it. */
export function findDovecot(): string {
  const bin = DOVECOT_CANDIDATES.find((p) => existsSync(p));
  if (!bin)
    throw new Error(
      'Dovecot is not installed (no /usr/sbin/dovecot): run `scripts/install-dovecot.sh` (Debian dovecot-imapd) before the IMAP tests',
    );
  return bin;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once the port answers with an IMAP greeting. */
async function waitForGreeting(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      const done = (v: boolean) => {
        socket.destroy();
        resolve(v);
      };
      socket.setTimeout(1_000, () => done(false));
      socket.once('data', (d) => done(d.toString().startsWith('* OK')));
      socket.once('error', () => done(false));
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`Dovecot did not answer on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function config(dir: string, port: number, asRoot: boolean, uid: number, gid: number): string {
  // Without root, every Dovecot process runs as the current user and group.
  const self = asRoot
    ? ''
    : `default_internal_user = ${userInfo().username}\ndefault_login_user = ${userInfo().username}\n` +
      `default_internal_group = ${execFileSync('id', ['-gn']).toString().trim()}\n`;
  return `# throwaway Postroom test server
protocols = imap
listen = 127.0.0.1
base_dir = ${dir}/run
state_dir = ${dir}/state
instance_name = postroom-${randomBytes(4).toString('hex')}
log_path = ${dir}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:${dir}/mail/%u
first_valid_uid = ${Math.min(uid, 500)}
${self}passdb {
  driver = passwd-file
  args = ${dir}/users
}
userdb {
  driver = static
  args = uid=${uid} gid=${gid} home=${dir}/mail/%u
}
service imap-login {
  ${asRoot ? '' : 'chroot =\n  '}inet_listener imap {
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
}
`;
}

/**
 * Starts a Dovecot of its own for one test file: loopback, a random free port, a passwd-file user and
 * maildir storage in a temporary directory owned by uid 65534 (or the current user when not root).
 * Throws a clear error when Dovecot is not installed.
 */
export async function startDovecot(
  options: { user?: string; password?: string } = {},
): Promise<DovecotServer> {
  const bin = findDovecot();
  const user = options.user ?? 'postroom';
  const password = options.password ?? `pw-${randomBytes(6).toString('hex')}`;
  const asRoot = process.getuid?.() === 0;
  const uid = asRoot ? 65534 : (process.getuid?.() ?? 65534);
  const gid = asRoot ? 65534 : (process.getgid?.() ?? 65534);
  const dir = await mkdtemp(join(tmpdir(), 'postroom-dovecot-'));
  // Login and auth processes run as other users: they must be able to walk into the directory.
  await chmod(dir, 0o755);
  await mkdir(join(dir, 'mail'), { recursive: true });
  await mkdir(join(dir, 'state'), { recursive: true });
  if (asRoot) await chown(join(dir, 'mail'), uid, gid);
  await writeFile(join(dir, 'users'), `${user}:{PLAIN}${password}\n`, { mode: 0o644 });
  const port = await freePort();
  const conf = join(dir, 'dovecot.conf');
  await writeFile(conf, config(dir, port, asRoot, uid, gid));
  const doveadm = bin.replace(/dovecot$/, 'doveadm').replace('/sbin/', '/bin/');

  try {
    await runDetached(bin, ['-c', conf]);
    await waitForGreeting(port, 15_000);
  } catch (err) {
    const log = await readFile(join(dir, 'dovecot.log'), 'utf8').catch(() => '');
    await runDetached(bin, ['-c', conf, 'stop']).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw new Error(`Dovecot did not start: ${(err as Error).message}\n${log}`, { cause: err });
  }

  const client = async (): Promise<ImapFlow> => {
    const c = new ImapFlow({
      host: '127.0.0.1',
      port,
      secure: false,
      auth: { user, pass: password },
      logger: false,
    });
    c.on('error', () => undefined); // test helper: failures surface as rejected commands
    await c.connect();
    return c;
  };
  const withClient = async <T>(fn: (c: ImapFlow) => Promise<T>): Promise<T> => {
    const c = await client();
    try {
      return await fn(c);
    } finally {
      await c.logout().catch(() => c.close());
    }
  };

  const server: DovecotServer = {
    host: '127.0.0.1',
    port,
    user,
    password,
    dir,
    conf,
    client,
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
        const list = await c.fetchAll('1:*', { uid: true, flags: true, envelope: true });
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
      await run(doveadm, ['-c', conf, 'mailbox', 'update', '-u', user, '--uid-validity', next, mailbox]);
      return next;
    },
    log: () => readFile(join(dir, 'dovecot.log'), 'utf8').catch(() => ''),
    async stop() {
      await runDetached(bin, ['-c', conf, 'stop']).catch(() => undefined);
      // The master removes its pid file on exit; wait for it so the port is free again.
      const pid = join(dir, 'run', 'master.pid');
      for (let i = 0; i < 50 && existsSync(pid); i += 1) await new Promise((r) => setTimeout(r, 100));
      await rm(dir, { recursive: true, force: true });
    },
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
