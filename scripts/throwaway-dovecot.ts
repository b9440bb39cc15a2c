import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { makeCertificates } from './throwaway-certs.js';

/**
 * A throwaway Dovecot for tests and benchmarks, in the recipe that works on these machines:
 * loopback, a free port, one passwd-file user, maildir in a temporary directory owned by uid 65534 (or
 * the current user when not root). Debian's `dovecot-imapd` provides the binary (`scripts/install-dovecot.sh`).
 */
export interface ThrowawayDovecot {
  /** The dovecot binary used. */
  bin: string;
  /** Always 127.0.0.1. */
  host: string;
  /** The free port it listens on (plain IMAP). */
  port: number;
  user: string;
  password: string;
  /** The temporary directory with the configuration, the mail and the log. */
  dir: string;
  /** Path of the configuration file (`dovecot -c <conf>`). */
  conf: string;
  /** The TLS side when launched with `tls: true`; null otherwise (plain IMAP only, `ssl = no`). */
  tls: DovecotTls | null;
  /** Opens a connected imapflow client for the user (log it out when done). */
  client(): Promise<ImapFlow>;
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
}

/**
 * The TLS mode of a throwaway Dovecot: a certificate for 127.0.0.1 and localhost signed by a CA made
 * for this server alone, TLS from the first byte on `port`, STARTTLS offered on the plain port.
 */
export interface DovecotTls {
  /** The implicit-TLS (`imaps`) port. */
  port: number;
  /** PEM file of the CA that signed the server certificate (what `NODE_EXTRA_CA_CERTS` would name). */
  caFile: string;
}

const CANDIDATES = ['/usr/sbin/dovecot', '/usr/local/sbin/dovecot'];

/** The Dovecot binary, or null when it is not installed (`scripts/install-dovecot.sh` installs it). */
export function findDovecot(): string | null {
  return CANDIDATES.find((p) => existsSync(p)) ?? null;
}

/** Runs `dovecot` detached: the daemon would otherwise keep our pipes open. */
function runDetached(bin: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${bin} ${args.join(' ')} exited with ${code ?? signal}`)),
    );
  });
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

/** Waits until an IMAP server greets (`* OK`) on host:port; throws after `timeoutMs`. */
export async function waitForGreeting(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, host);
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
      throw new Error(`Dovecot did not answer on ${host}:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What the TLS mode adds to the configuration. */
export interface TlsConfig {
  port: number;
  certFile: string;
  keyFile: string;
}

/** Where and how a throwaway Dovecot runs: what its configuration file says. */
export interface DovecotLayout {
  /** The directory holding the configuration, the mail, the state and the log. */
  dir: string;
  /** Address it listens on: 127.0.0.1 on this machine, `*` in a container. */
  listen: string;
  /** Plain IMAP (and STARTTLS) port. */
  port: number;
  /** Whether its master runs as root (then logins run as Dovecot's own users, mail as uid/gid). */
  asRoot: boolean;
  uid: number;
  gid: number;
  tls: TlsConfig | null;
}

/** The configuration file of a throwaway Dovecot (Dovecot 2.3 syntax). */
export function dovecotConfig({ dir, listen, port, asRoot, uid, gid, tls }: DovecotLayout): string {
  // Without root every Dovecot process runs as the current user.
  const self = asRoot
    ? ''
    : `default_internal_user = ${userInfo().username}\ndefault_login_user = ${userInfo().username}\n` +
      `default_internal_group = ${execFileSync('id', ['-gn']).toString().trim()}\n`;
  // TLS mode: TLS is required to log in and STARTTLS is offered on the plain port. Dovecot counts a
  // connection from 127.0.0.1 to 127.0.0.1 as secured, so a plain login still works on loopback:
  // the log tells how a client came in (`TLS` or `secured` on its lines), and `imap_id_log` names the
  // client (imapflow sends its ID, `name=postroom` from Postroom, right after any STARTTLS).
  const ssl = tls
    ? `ssl = required\nssl_cert = <${tls.certFile}\nssl_key = <${tls.keyFile}\nimap_id_log = name\n`
    : 'ssl = no\n';
  const imaps = tls ? `port = ${tls.port}\n    ssl = yes` : 'port = 0';
  return `# throwaway Postroom server (tests, benchmarks)
protocols = imap
listen = ${listen}
base_dir = ${dir}/run
state_dir = ${dir}/state
instance_name = postroom-${randomBytes(4).toString('hex')}
log_path = ${dir}/dovecot.log
${ssl}disable_plaintext_auth = no
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
    ${imaps}
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
}
`;
}

/** Its passwd-file: the one user with a plain-text password. */
export const dovecotUsers = (user: string, password: string): string => `${user}:{PLAIN}${password}\n`;

/**
 * An imapflow client for a throwaway Dovecot's user, connected. With `ca` (TLS mode) it takes the
 * STARTTLS the server offers and trusts that CA.
 */
export async function dovecotClient(opts: {
  host: string;
  port: number;
  user: string;
  password: string;
  ca?: Buffer;
}): Promise<ImapFlow> {
  const c = new ImapFlow({
    host: opts.host,
    port: opts.port,
    secure: false,
    auth: { user: opts.user, pass: opts.password },
    logger: false,
    ...(opts.ca && { tls: { ca: opts.ca } }),
  });
  c.on('error', () => undefined); // failures surface as rejected commands
  await c.connect();
  return c;
}

/**
 * Starts a Dovecot of its own; throws when it is not installed or does not come up. With `tls: true`
 * it also listens for TLS on a port of its own and offers STARTTLS on the plain one, with a
 * certificate from a throwaway CA made by openssl in its directory (`tls.caFile`); without, it is
 * plain IMAP only, `ssl = no`.
 */
export async function launchDovecot(
  options: { user?: string; password?: string; label?: string; tls?: boolean } = {},
): Promise<ThrowawayDovecot> {
  const bin = findDovecot();
  if (!bin)
    throw new Error('Dovecot is not installed (no /usr/sbin/dovecot): run scripts/install-dovecot.sh');
  const user = options.user ?? 'postroom';
  const password = options.password ?? `pw-${randomBytes(6).toString('hex')}`;
  const asRoot = process.getuid?.() === 0;
  const uid = asRoot ? 65534 : (process.getuid?.() ?? 65534);
  const gid = asRoot ? 65534 : (process.getgid?.() ?? 65534);
  const dir = await mkdtemp(join(tmpdir(), `postroom-${options.label ?? 'dovecot'}-`));
  // Login and auth processes run as other users: they must be able to walk into the directory.
  await chmod(dir, 0o755);
  await mkdir(join(dir, 'mail'), { recursive: true });
  await mkdir(join(dir, 'state'), { recursive: true });
  if (asRoot) await chown(join(dir, 'mail'), uid, gid);
  await writeFile(join(dir, 'users'), dovecotUsers(user, password), { mode: 0o644 });
  const port = await freePort();
  const conf = join(dir, 'dovecot.conf');
  let tls: (TlsConfig & { caFile: string; ca: Buffer }) | null = null;
  try {
    if (options.tls) {
      const files = await makeCertificates(dir);
      tls = { ...files, port: await freePort(), ca: await readFile(files.caFile) };
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  await writeFile(conf, dovecotConfig({ dir, listen: '127.0.0.1', port, asRoot, uid, gid, tls }));
  try {
    await runDetached(bin, ['-c', conf]);
    await waitForGreeting('127.0.0.1', port, 15_000);
  } catch (err) {
    const log = await readFile(join(dir, 'dovecot.log'), 'utf8').catch(() => '');
    await runDetached(bin, ['-c', conf, 'stop']).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw new Error(`Dovecot did not start: ${(err as Error).message}\n${log}`, { cause: err });
  }
  return {
    bin,
    host: '127.0.0.1',
    port,
    user,
    password,
    dir,
    conf,
    tls: tls && { port: tls.port, caFile: tls.caFile },
    // In TLS mode imapflow takes the STARTTLS the server offers: it must trust the throwaway CA.
    client: () => dovecotClient({ host: '127.0.0.1', port, user, password, ca: tls?.ca }),
    async stop() {
      await runDetached(bin, ['-c', conf, 'stop']).catch(() => undefined);
      // The master removes its pid file on exit; wait for it so the port is free again.
      const pid = join(dir, 'run', 'master.pid');
      for (let i = 0; i < 50 && existsSync(pid); i += 1) await new Promise((r) => setTimeout(r, 100));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
