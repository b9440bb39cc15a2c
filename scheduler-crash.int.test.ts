/**
 * A job whose process is killed mid-run, with real processes: a Postroom process (the built
 * `dist/main.js`, roles `scheduler` and `api`) runs a per-second `poll` job against an API that does
 * not answer, is SIGKILLed while runs are `running`, and a second process started on the same MySQL
 * and RabbitMQ shows those runs failed and runs the job's next due times. Run `npm run build` first.
 *
 * SCHEDULES_FILE takes 5-field expressions only (a minute apart at best), so the child wires its
 * `scheduler` role with the same job parsed with seconds allowed: everything else is the process
 * `dist/main.js` starts, with its own connections, outbox relay, consumer and API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './test/broker.js';
import { createTestDatabase, type TestDatabase } from './test/db.js';
import { createTestVhost, freePort } from './test/process.js';

const REPO = dirname(fileURLToPath(import.meta.url));
const TOKEN = 'crash-test-token-0123456789abcdef';

/** The child: `startPostroom` of dist/main.js, its scheduler role given the per-second job of TEST_JOBS. */
const CHILD = `
  import { loadConfig } from './dist/infra/config.js';
  import { createLogger } from './dist/infra/logger.js';
  import { combineRoles } from './dist/infra/roles.js';
  import { parseSchedules } from './dist/infra/schedules/schedules-file.js';
  import { startJobs } from './dist/consumers/jobs/index.js';
  import { startSchedulerRole } from './dist/producers/scheduler/index.js';
  import { startPostroom } from './dist/main.js';
  const config = loadConfig(process.env);
  const jobs = parseSchedules(JSON.parse(process.env.TEST_JOBS), { allowSeconds: true });
  const postroom = await startPostroom(config, {
    log: createLogger(config.LOG_LEVEL),
    starters: {
      scheduler: async (ctx) => {
        const consumer = await startJobs(ctx, { jobs });
        return combineRoles(consumer, await startSchedulerRole(ctx, { jobs }));
      },
    },
  });
  process.on('SIGTERM', () => void postroom.stop().then(() => process.exit(0)));
`;

interface Run {
  id: string;
  trigger: string;
  dueAt: string | null;
  status: string;
  detail: string | null;
}

describe('a job whose process is killed mid-run', () => {
  let t: TestDatabase;
  let vhost: Awaited<ReturnType<typeof createTestVhost>>;
  let dir: string;
  let api: Server;
  let apiUrl = '';
  /** While true the polled API never answers: a run started then stays `running`. */
  let hang = true;
  const hung: ServerResponse[] = [];
  const children: ChildProcess[] = [];
  let env: Record<string, string>;

  beforeAll(async () => {
    t = await createTestDatabase('crash');
    vhost = await createTestVhost();
    dir = await mkdtemp(join(tmpdir(), 'postroom-crash-'));
    api = createServer((_req, res) => {
      if (hang) hung.push(res);
      else res.writeHead(200, { 'content-type': 'application/json' }).end('{"rate":1.08}');
    });
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}/rates`;
    const job = { name: 'rates', kind: 'poll', url: apiUrl, timeoutMs: 60_000, retries: 0 };
    // The file the process validates at start (a job as SCHEDULES_FILE allows it); the role runs the
    // same job each second.
    const schedules = join(dir, 'schedules.json');
    await writeFile(schedules, JSON.stringify([{ ...job, schedule: '* * * * *' }]));
    env = {
      PATH: process.env['PATH'] ?? '',
      AMQP_URL: vhost.url,
      MYSQL_URL: t.url,
      ROLES: 'scheduler,api',
      API_TOKENS: TOKEN,
      SCHEDULES_FILE: schedules,
      OUTBOUND_ALLOW_HOSTS: '127.0.0.1',
      BACKUP_DIR: join(dir, 'backups'),
      STORAGE_DIR: join(dir, 'storage'),
      LOG_LEVEL: 'warn',
      TEST_JOBS: JSON.stringify([{ ...job, schedule: '* * * * * *' }]),
    };
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    api?.closeAllConnections();
    api?.close();
    await t?.drop();
    await vhost?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Starts a Postroom process on a fresh port; resolves once it is ready. */
  async function start(): Promise<{ child: ChildProcess; port: number; output: () => string }> {
    const port = await freePort();
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
      cwd: REPO,
      env: { ...env, HTTP_PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`Postroom exited at start: ${out}`);
        const r = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null);
        return r?.status === 200;
      },
      30_000,
      'ready',
    );
    return { child, port, output: () => out };
  }

  const runsOf = async (port: number): Promise<Run[]> => {
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/jobs?runs=100`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { items: { name: string; lastRuns: Run[] }[] };
    return body.items.find((j) => j.name === 'rates')?.lastRuns ?? [];
  };

  it('shows the runs it cut off as failed, and runs the next due times', async () => {
    const first = await start();
    // Runs start each second and hang on the API: kill the process while they are `running`.
    const running = await waitFor(
      async () => {
        const runs = (await runsOf(first.port)).filter((r) => r.status === 'running');
        return runs.length >= 2 ? runs : null;
      },
      20_000,
      'two runs running',
    );
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    const killedAt = new Date().toISOString();
    hang = false;
    for (const res of hung) res.destroy();

    const second = await start();
    const cutOff = new Set(running.map((r) => r.id));
    const after = await waitFor(
      async () => {
        const runs = await runsOf(second.port);
        const failed = runs.filter((r) => cutOff.has(r.id) && r.status === 'failed');
        const next = runs.filter(
          (r) => r.trigger === 'schedule' && (r.dueAt ?? '') > killedAt && r.status === 'succeeded',
        );
        return failed.length === cutOff.size && next.length >= 2 ? runs : null;
      },
      20_000,
      'the cut-off runs failed and the next due times run',
    );
    for (const r of after.filter((x) => cutOff.has(x.id))) {
      expect(r.status).toBe('failed');
      expect(r.detail).toMatch(/^JOB\.INTERRUPTED: the process running it stopped before it finished/);
    }
    // Each due time ran once, and none of the cut-off runs ran a second time.
    const due = after.filter((r) => r.dueAt !== null).map((r) => r.dueAt);
    expect(new Set(due).size).toBe(due.length);
    expect(after.some((r) => cutOff.has(r.id) && r.status === 'succeeded')).toBe(false);
    second.child.kill('SIGTERM');
    expect(await new Promise((r) => second.child.once('exit', (code) => r(code)))).toBe(0);
  });
});
