/**
 * Throwaway MariaDB and RabbitMQ servers that speak TLS only, for the tests of encrypted connections
 * (and a plain RabbitMQ node with its Prometheus plugin, for the dashboard test).
 * Each runs from a temporary directory on a free loopback port with certificates from
 * `makeCertificates` (a private CA, a server certificate for `IP:127.0.0.1, DNS:localhost`), and is
 * stopped and removed by `stop()`. The machine's own MariaDB and RabbitMQ are not touched.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { makeCertificates, type CertificateFiles } from '../scripts/throwaway-certs.js';
import { freePort } from './process.js';

const run = promisify(execFile);

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
  await run('mariadb-install-db', [
    '--no-defaults',
    `--datadir=${data}`,
    '--user=root',
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
  ]);
  const port = await freePort();
  const child = spawn(
    '/usr/sbin/mariadbd',
    [
      '--no-defaults',
      `--datadir=${data}`,
      '--user=root',
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
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
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
  await run('chown', ['-R', 'rabbitmq:rabbitmq', dir]).catch(() => chown(dir, process.getuid?.() ?? 0, 0));
  const env = {
    ...process.env,
    RABBITMQ_NODENAME: node,
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_PID_FILE: join(dir, 'rabbitmq.pid'),
  };
  const child = spawn('rabbitmq-server', [], { env, stdio: 'ignore', detached: true });
  const stop = async () => {
    await run('rabbitmqctl', ['-n', node, 'stop'], { env, timeout: 30_000 }).catch(() => undefined);
    if (child.exitCode === null && child.pid) {
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
