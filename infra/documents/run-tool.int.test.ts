import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../test/broker.js';
import { runTool } from './run-tool.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The parent pid of a running process, or null when it is gone. */
function parentOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

/** True while any process of the group `pgid` is alive. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('outside programs, run from the tool host', () => {
  it('runs a program from the small host process, not from Postroom itself, and reports how it ended', async () => {
    let pid = 0;
    let parent: number | null = null;
    const result = await runTool('sh', ['-c', 'echo out; echo err >&2; sleep 0.3; exit 3'], {
      timeoutMs: 10_000,
      onStart: (p) => {
        pid = p;
        parent = parentOf(p);
      },
    });
    expect(result).toMatchObject({ code: 3, timedOut: false });
    expect(result.output).toContain('out');
    expect(result.output).toContain('err');
    expect(pid).toBeGreaterThan(0);
    expect(parent).not.toBeNull();
    expect(parent).not.toBe(process.pid);
  });

  it('still kills the whole group at the time limit', async () => {
    let pgid = 0;
    const result = await runTool('sh', ['-c', 'sleep 30 & sleep 30'], {
      timeoutMs: 300,
      onStart: (p) => (pgid = p),
    });
    expect(result.timedOut).toBe(true);
    await waitFor(async () => !groupAlive(pgid), 5_000, 'the group gone');
  });

  it('leaves no program running when Postroom is killed (SIGKILL) in the middle of a run', async () => {
    // A real process runs a long program through runTool, says its group id, and is killed.
    const script = `
      import { runTool } from './dist/infra/documents/run-tool.js';
      runTool('sh', ['-c', 'sleep 60 & sleep 60'], { timeoutMs: 120000, onStart: (pgid) => console.log(pgid) });
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const pgid = await new Promise<number>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      child.once('exit', (code) => reject(new Error(`exited early (${code})`)));
    });
    expect(groupAlive(pgid)).toBe(true);
    child.kill('SIGKILL');
    await waitFor(async () => !groupAlive(pgid), 10_000, 'the sleeps to be killed with Postroom');
  });

  it('fails the run in flight when the host is killed by hand, kills its program, and starts a new host next time', async () => {
    let pgid = 0;
    const run = runTool('sh', ['-c', 'sleep 30 & sleep 30'], {
      timeoutMs: 60_000,
      onStart: (p) => (pgid = p),
    });
    await waitFor(async () => pgid > 0, 5_000, 'the program started');
    const host = parentOf(pgid)!;
    process.kill(host, 'SIGKILL');
    await expect(run).rejects.toThrow(/tool host exited/);
    await waitFor(async () => !groupAlive(pgid), 5_000, 'the program killed with its host');
    let next = 0;
    const again = await runTool('sh', ['-c', 'exit 0'], { timeoutMs: 5_000, onStart: (p) => (next = p) });
    expect(again.code).toBe(0);
    expect(next).toBeGreaterThan(0);
    expect(parentOf(host)).toBeNull(); // the old host is gone: a new one ran it
  });
});
