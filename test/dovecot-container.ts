import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ImapFlow } from 'imapflow';
import {
  dovecotClient,
  dovecotConfig,
  dovecotUsers,
  waitForGreeting,
  type DovecotTls,
} from '../scripts/throwaway-dovecot.js';
import { makeCertificates } from '../scripts/throwaway-certs.js';
import {
  containerUlimits,
  DEFAULT_DOVECOT_IMAGE,
  loopback,
  RUN_LABEL,
  testcontainers,
} from './containers.js';

/** A throwaway Dovecot in a container, driven the way test/dovecot.ts drives a local one. */
export interface ContainerDovecot {
  /** The image it runs. */
  image: string;
  /** Where the machine reaches its published ports (127.0.0.1 with a local engine). */
  host: string;
  /** The published plain IMAP (and STARTTLS) port. */
  port: number;
  tls: DovecotTls | null;
  user: string;
  password: string;
  client(): Promise<ImapFlow>;
  /** Runs doveadm in the container, on this server's configuration. */
  doveadm(args: string[]): Promise<void>;
  /** The server's log file. */
  log(): Promise<string>;
  /** Removes the container and the local directory with the TLS files. */
  stop(): Promise<void>;
}

/** Where everything of the server lives inside its container (not a volume: it goes with it). */
const DIR = '/srv/postroom-test';
const IMAP_PORT = 143;
const IMAPS_PORT = 993;

/**
 * One Dovecot per call, in a container of its own (TEST_DOVECOT_IMAGE, else dovecot/dovecot:2.3.21;
 * any image with Dovecot 2.3's `dovecot` and `doveadm` on PATH), with the configuration, user and TLS
 * material the local path gives (scripts/throwaway-dovecot.ts), listening on every address of the
 * container instead of 127.0.0.1, its ports published on random ports of the machine.
 *
 * Why a container per server and not one shared container with a user per test file:
 * - The tests read a server's log and assert what is absent from it: imap-tls.int.test.ts checks that
 *   Postroom never sent its IMAP ID to the server when the certificate is refused. The ID comes before
 *   any login, so lines of another file's Postroom (vitest runs files in parallel) could not be told
 *   apart by user: only a server no one else talks to keeps that test honest.
 * - The TLS server differs in its configuration (`ssl = required`, its own throwaway CA) from the
 *   plain-text one the other files use (`ssl = no`): a shared one would need both, per listener.
 * - Everything a test assumes of its server holds as on the local path: the default user `postroom`
 *   is the same in every file, mailboxes start empty, UIDVALIDITY can be changed under one mailbox
 *   without touching another file's, and `stop()` really stops it.
 * The price is one container start per server: 0.8 s (1.3 s with TLS, certificates included) through
 * podman here, against 0.1-0.2 s for a local one; the whole suite starts eight.
 */
export async function startDovecotContainer(
  options: { user?: string; password?: string; tls?: boolean } = {},
): Promise<ContainerDovecot> {
  const image = process.env['TEST_DOVECOT_IMAGE'] ?? DEFAULT_DOVECOT_IMAGE;
  const user = options.user ?? 'postroom';
  const password = options.password ?? `pw-${randomBytes(6).toString('hex')}`;
  const { GenericContainer, getContainerRuntimeClient } = await testcontainers();
  // Where the published ports are reached: 127.0.0.1 with the machine's own engine, the engine's
  // gateway when the tests themselves run in a container (testcontainers tells them apart).
  const host = loopback((await getContainerRuntimeClient()).info.containerRuntime.host);
  // The TLS files are made here (the tests need the CA on this machine), for that host, and copied in.
  const local = await mkdtemp(join(tmpdir(), 'postroom-dovecot-container-'));
  try {
    const certs = options.tls ? await makeCertificates(local, [host]) : null;
    const tls = certs && {
      port: IMAPS_PORT,
      certFile: `${DIR}/tls/server.pem`,
      keyFile: `${DIR}/tls/server.key`,
    };
    // The master runs as root in the container; mail belongs to nobody (65534), as on the local
    // path when the tests run as root.
    const conf = dovecotConfig({
      dir: DIR,
      listen: '*',
      port: IMAP_PORT,
      asRoot: true,
      uid: 65534,
      gid: 65534,
      tls,
    });
    const files = [
      { content: conf, target: `${DIR}/dovecot.conf`, mode: 0o644 },
      { content: dovecotUsers(user, password), target: `${DIR}/users`, mode: 0o644 },
    ];
    if (certs && tls)
      files.push(
        { content: await readFile(certs.certFile, 'utf8'), target: tls.certFile, mode: 0o644 },
        { content: await readFile(certs.keyFile, 'utf8'), target: tls.keyFile, mode: 0o600 },
      );
    const ports = tls ? [IMAP_PORT, IMAPS_PORT] : [IMAP_PORT];
    const run = process.env['TEST_CONTAINER_RUN'];
    const container = await new GenericContainer(image)
      .withUlimits(containerUlimits())
      .withLabels(run ? { [RUN_LABEL]: run } : {})
      .withCopyContentToContainer(files)
      // Our own entry point, so that the image's (if any) cannot get in the way; Dovecot in the
      // foreground is the container's process.
      .withEntrypoint(['/bin/sh', '-c'])
      .withCommand([
        `set -e; mkdir -p ${DIR}/mail ${DIR}/state; chown 65534:65534 ${DIR}/mail; chmod 755 ${DIR}; ` +
          `exec dovecot -F -c ${DIR}/dovecot.conf`,
      ])
      .withExposedPorts(...ports)
      .withStartupTimeout(60_000)
      .start();
    const port = container.getMappedPort(IMAP_PORT);
    const exec = async (cmd: string[]) => {
      const r = await container.exec(cmd);
      if (r.exitCode !== 0)
        throw new Error(`${cmd.join(' ')} in the Dovecot container exited with ${r.exitCode}: ${r.output}`);
      return r.stdout;
    };
    const log = () => exec(['cat', `${DIR}/dovecot.log`]).catch(() => '');
    try {
      await waitForGreeting(host, port, 30_000);
    } catch (err) {
      const said = await log();
      await container.stop().catch(() => undefined);
      throw new Error(`Dovecot in a container (${image}) did not start: ${(err as Error).message}\n${said}`, {
        cause: err,
      });
    }
    const ca = certs ? await readFile(certs.caFile) : undefined;
    return {
      image,
      host,
      port,
      tls: certs && { port: container.getMappedPort(IMAPS_PORT), caFile: certs.caFile },
      user,
      password,
      client: () => dovecotClient({ host, port, user, password, ca }),
      doveadm: async (args) => {
        await exec(['doveadm', '-c', `${DIR}/dovecot.conf`, ...args]);
      },
      log,
      async stop() {
        await container.stop().catch(() => undefined);
        await rm(local, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(local, { recursive: true, force: true });
    throw err;
  }
}
