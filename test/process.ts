import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { TEST_AMQP_URL } from './env.js';

const run = promisify(execFile);

/** A Postroom process started from the built `dist/main.js`, with its output kept. */
export interface ChildPostroom {
  child: ChildProcess;
  /** Everything written so far to stdout and stderr. */
  output(): string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
}

/** Starts `node dist/main.js` with the given environment (on top of PATH only). */
export function spawnPostroom(env: Record<string, string>): ChildPostroom {
  const child = spawn(process.execPath, ['dist/main.js'], {
    env: { PATH: process.env['PATH'] ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  return { child, output: () => out, exited };
}

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/**
 * Calls RabbitMQ's management API (TEST_RABBITMQ_API, set by test/global-setup.ts when RabbitMQ runs in
 * a container and rabbitmqctl is not on this machine).
 */
async function managementApi(api: string, method: 'PUT' | 'DELETE', path: string, body?: object) {
  const u = new URL(`${api}${path}`);
  const auth = Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString(
    'base64',
  );
  u.username = '';
  u.password = '';
  const res = await fetch(u, {
    method,
    headers: { authorization: `Basic ${auth}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok && !(method === 'DELETE' && res.status === 404))
    throw new Error(`RabbitMQ management API ${method} ${path}: ${res.status} ${await res.text()}`);
}

/** A RabbitMQ vhost of its own for a test that runs a whole process; removed by `drop()`. */
export async function createTestVhost(): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const name = `test-${randomBytes(4).toString('hex')}`;
  const api = process.env['TEST_RABBITMQ_API'];
  const u = new URL(TEST_AMQP_URL);
  const user = decodeURIComponent(u.username) || 'guest';
  if (api) {
    await managementApi(api, 'PUT', `/vhosts/${encodeURIComponent(name)}`);
    await managementApi(api, 'PUT', `/permissions/${encodeURIComponent(name)}/${encodeURIComponent(user)}`, {
      configure: '.*',
      write: '.*',
      read: '.*',
    });
  } else {
    await run('rabbitmqctl', ['-q', 'add_vhost', name]);
    await run('rabbitmqctl', ['-q', 'set_permissions', '-p', name, user, '.*', '.*', '.*']);
  }
  u.pathname = `/${encodeURIComponent(name)}`;
  return {
    url: u.toString(),
    name,
    async drop() {
      if (api)
        await managementApi(api, 'DELETE', `/vhosts/${encodeURIComponent(name)}`).catch(() => undefined);
      else await run('rabbitmqctl', ['-q', 'delete_vhost', name]).catch(() => undefined);
    },
  };
}
