/**
 * Throwaway MariaDB and RabbitMQ servers that speak TLS only, for the tests of encrypted connections
 * (and a plain RabbitMQ node with its Prometheus plugin, for the dashboard test).
 * Each runs from a temporary directory on a free loopback port with certificates from
 * `makeCertificates` (a private CA, a server certificate for `IP:127.0.0.1, DNS:localhost`), and is
 * stopped and removed by `stop()`. The machine's own MariaDB and RabbitMQ are not touched.
 *
 * The programs come from `mariadb-server`, `rabbitmq-server` and `openssl`, looked for on the PATH and
 * in /usr/sbin; where they are not installed, test/tools-container.ts puts stubs first on the PATH that
 * run them in the tools image (host network, the temp folder at the same path), and the servers run
 * there as containers that end when the server does.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findOnPath } from '../infra/config.js';
import { makeCertificates, type CertificateFiles } from '../scripts/throwaway-certs.js';
import { freePort } from './process.js';
import { inContainer, toolSearchPath } from './tools-container.js';

const run = promisify(execFile);

/** Where `program` is (a stub of the tools image's first), or an error that says what to install. */
function program(name: 'mariadb-install-db' | 'mariadbd' | 'rabbitmq-server' | 'rabbitmqctl'): string {
  const found = findOnPath(name, toolSearchPath());
  if (found) return found;
  const pkg = name.startsWith('mariadb') ? 'mariadb-server' : 'rabbitmq-server';
  throw new Error(
    `${name} is not installed (not on PATH nor in /usr/sbin) and the tools image could not be used: ` +
      `the TLS tests' throwaway servers need Debian's ${pkg}, or Docker (README, "Two commands")`,
  );
}

/** Resolves when `child` has exited, or after `ms` if given; true when it has exited. */
async function exited(child: ChildProcess, ms?: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((resolve) => {
    const timer = ms === undefined ? undefined : setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** A started TLS-only server. */
export interface TlsServer {
  /** The loopback port of its TLS listener. */
  port: number;
  /** The certificates it presents; `caFile` is what a client must trust. */
  certs: CertificateFiles;
  /** A CA that did not sign the server's certificate (for "wrong CA" tests). */
  otherCaFile: string;
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
}

async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

async function waitForPort(port: number, child: ChildProcess, what: string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode} at start`);
    if (await portOpen(port)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not listen on port ${port} within ${ms} ms`);
}

async function makeDirs(
  label: string,
): Promise<{ dir: string; certs: CertificateFiles; otherCaFile: string }> {
  const dir = await mkdtemp(join(tmpdir(), `postroom-${label}-`));
  const certs = await makeCertificates(dir);
  const other = join(dir, 'other');
  await mkdir(other);
  const otherCerts = await makeCertificates(other);
  return { dir, certs, otherCaFile: otherCerts.caFile };
}

/**
 * A MariaDB with `require_secure_transport=ON`: a client without TLS is refused by the server. Root
 * logs in over TCP with no password (`mysql://root@127.0.0.1:<port>/db`).
 */
export async function startTlsMariadb(): Promise<TlsServer> {
  const { dir, certs, otherCaFile } = await makeDirs('tls-mariadb');
  const data = join(dir, 'data');
  // As root, MariaDB runs only with --user=root; as another user, that option fails (the data folder
  // cannot be handed to root) and none is needed. The tools image's programs add it themselves when
  // they run as root there, which the caller cannot tell (a rootless engine's container root).
  const asRoot = !inContainer('mariadbd') && process.getuid?.() === 0 ? ['--user=root'] : [];
  await run(program('mariadb-install-db'), [
    '--no-defaults',
    `--datadir=${data}`,
    ...asRoot,
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
  ]);
  const port = await freePort();
  // In the tools image (a stub), the SIGTERM of stop() reaches the server through the stub, and the
  // container ends with it.
  const child = spawn(
    program('mariadbd'),
    [
      '--no-defaults',
      `--datadir=${data}`,
      ...asRoot,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--socket=${join(dir, 'mysqld.sock')}`,
      `--pid-file=${join(dir, 'mysqld.pid')}`,
      `--ssl-cert=${certs.certFile}`,
      `--ssl-key=${certs.keyFile}`,
      `--ssl-ca=${certs.caFile}`,
      '--require-secure-transport=ON',
      '--skip-log-bin',
      '--innodb-buffer-pool-size=16M',
      '--skip-name-resolve',
    ],
    { stdio: 'ignore' },
  );
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited(child);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, child, 'MariaDB with TLS', 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, certs, otherCaFile, stop };
}

/** A RabbitMQ node of its own; `port` is its only AMQP listener (TLS, or plain with `plain: true`). */
export interface ThrowawayRabbitmq extends TlsServer {
  /** The port of the `rabbitmq_prometheus` plugin (`/metrics`, `/metrics/per-object`...), or null when not asked for. */
  prometheusPort: number | null;
}

/**
 * A RabbitMQ node of its own (its own node name, distribution port and data directory) whose only
 * listener is AMQP over TLS, or plain AMQP with `plain: true`; with `prometheus: true` it also serves
 * the `rabbitmq_prometheus` plugin's metrics with the plugin's defaults, as the Compose stack's node
 * does (per queue only on `/metrics/per-object`). guest/guest may log in from loopback, as on
 * the machine's own broker. Debian's `rabbitmq-server` drops to the `rabbitmq` user, so the directory
 * is handed to it.
 *
 * In the tools image the node runs as the caller instead (the image's `rabbitmq-server` is the real
 * script, not Debian's wrapper), so the directory stays the caller's and is its HOME too (the Erlang
 * cookie that `rabbitmqctl` needs). It also brings its own epmd on a free port (ERL_EPMD_PORT, for the
 * node and its `rabbitmqctl`): on the shared host network the default port 4369 may be the machine's
 * epmd, or another test's container's, which would go away with that container.
 */
export async function startTlsRabbitmq(
  opts: { plain?: boolean; prometheus?: boolean } = {},
): Promise<ThrowawayRabbitmq> {
  const { dir, certs, otherCaFile } = await makeDirs('tls-rabbitmq');
  const port = await freePort();
  const distPort = await freePort();
  const prometheusPort = opts.prometheus ? await freePort() : null;
  const node = `postroom-tls-${process.pid}-${port}@localhost`;
  const listeners = opts.plain
    ? [`listeners.tcp.default = 127.0.0.1:${port}`]
    : [
        'listeners.tcp = none',
        `listeners.ssl.default = ${port}`,
        `ssl_options.cacertfile = ${certs.caFile}`,
        `ssl_options.certfile = ${certs.certFile}`,
        `ssl_options.keyfile = ${certs.keyFile}`,
        'ssl_options.verify = verify_none',
        'ssl_options.fail_if_no_peer_cert = false',
      ];
  const prometheus = prometheusPort
    ? [`prometheus.tcp.port = ${prometheusPort}`, 'prometheus.tcp.ip = 127.0.0.1']
    : [];
  await writeFile(join(dir, 'rabbitmq.conf'), [...listeners, ...prometheus, ''].join('\n'));
  await writeFile(join(dir, 'enabled_plugins'), prometheusPort ? '[rabbitmq_prometheus].\n' : '[].\n');
  const container = inContainer('rabbitmq-server');
  if (!container)
    await run('chown', ['-R', 'rabbitmq:rabbitmq', dir]).catch(() => chown(dir, process.getuid?.() ?? 0, 0));
  const ownEpmd = container
    ? { HOME: dir, ERL_EPMD_PORT: String(await freePort()), ERL_EPMD_ADDRESS: '127.0.0.1' }
    : {};
  const env = {
    ...process.env,
    ...ownEpmd,
    RABBITMQ_NODENAME: node,
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_PID_FILE: join(dir, 'rabbitmq.pid'),
  };
  const child = spawn(program('rabbitmq-server'), [], { env, stdio: 'ignore', detached: true });
  const stop = async () => {
    await run(program('rabbitmqctl'), ['-n', node, 'stop'], { env, timeout: 30_000 }).catch(() => undefined);
    // The node has stopped; its script (and, in the tools image, the container) ends right after.
    if (!(await exited(child, 15_000)) && child.pid) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, child, 'RabbitMQ', 90_000);
    if (prometheusPort) await waitForPort(prometheusPort, child, "RabbitMQ's Prometheus plugin", 30_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, certs, otherCaFile, prometheusPort, stop };
}
