/**
 * Runs an outside program (soffice, pdfinfo, pdftoppm) as the leader of its own process group, with a
 * time limit after which the whole group is killed: soffice starts `oosplash` and `soffice.bin`, and
 * killing only the first would leave the others running. The group is killed once more after the
 * leader exits, so nothing it started outlives the call, and every group still running is killed when
 * the process that started it exits (a stop in the middle of a conversion: the message is redelivered
 * and converted again).
 *
 * `runTool` starts the programs from the tool host (`tool-host.ts`), a small long-lived child process,
 * rather than from Postroom itself: starting a program forks the process that starts it, and forking a
 * Node process holding 150 MB cost about 7.5 ms of CPU and 19 ms of wall time here, against 1.4 ms
 * and 3 ms from a fresh small one; through a backlog of 1,000 mails with one PDF preview each, 43
 * mails/s with the host against 38 without (`npm run bench`, quiet 2-core machine). `runToolHere` is
 * the same run in the calling process: the host's own, and the fallback when the host cannot be had.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** How a program run ended. */
export interface ToolResult {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  /** True when the time limit passed and the group was killed. */
  timedOut: boolean;
  /** The last few KiB of stderr and stdout (for reasons and logs). */
  output: string;
}

/** Options of {@link runTool}. */
export interface RunToolOptions {
  /** Milliseconds before the process group is killed. */
  timeoutMs: number;
  /** Environment (default: the process's own). */
  env?: NodeJS.ProcessEnv;
  /** Working directory. */
  cwd?: string;
  /** Called with the group's id once started (tests look for leftovers with it). */
  onStart?: (pid: number) => void;
}

const OUTPUT_KEEP = 4096;

/** Process groups still running: killed when this process exits, so no tool outlives Postroom. */
const liveGroups = new Set<number>();
let exitHook = false;
function killLiveGroups(): void {
  for (const pgid of liveGroups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/**
 * Runs `command args` in a new process group, from the tool host when it can be had; resolves when it
 * has exited (or was killed), never rejects on a non-zero exit.
 */
export function runTool(
  command: string,
  args: readonly string[],
  options: RunToolOptions,
): Promise<ToolResult> {
  const host = toolHost();
  return host ? host.run(command, args, options) : runToolHere(command, args, options);
}

/** {@link runTool} in this process: the tool host's own runner, and the fallback without a host. */
export function runToolHere(
  command: string,
  args: readonly string[],
  options: RunToolOptions,
): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      detached: true, // its own process group: `kill(-pid)` reaches everything it starts
      stdio: ['ignore', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-OUTPUT_KEEP);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const killGroup = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // ESRCH: the group is already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, options.timeoutMs);
    child.once('spawn', () => {
      if (child.pid === undefined) return;
      liveGroups.add(child.pid);
      if (!exitHook) {
        exitHook = true;
        process.once('exit', killLiveGroups);
      }
      options.onStart?.(child.pid);
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // Whatever the leader left behind goes with it; 'close' (all pipes shut) follows once it has.
    child.once('exit', killGroup);
    child.once('close', (code) => {
      clearTimeout(timer);
      killGroup();
      if (child.pid !== undefined) liveGroups.delete(child.pid);
      resolve({ code, timedOut, output });
    });
  });
}

/** A request to the tool host, and what it answers. */
export interface ToolHostRequest {
  id: number;
  command: string;
  args: readonly string[];
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}
export type ToolHostAnswer =
  | { id: number; type: 'start'; pid: number }
  | { id: number; type: 'done'; result: ToolResult }
  | { id: number; type: 'error'; message: string; code?: string };

interface Waiting {
  resolve: (r: ToolResult) => void;
  reject: (err: Error) => void;
  onStart?: (pid: number) => void;
  pgid?: number;
  /** Fires when the host has not answered long after the run's own time limit. */
  overdue?: NodeJS.Timeout;
}

/** How long past a run's time limit the host may take to answer before it is taken for wedged. */
const HOST_GRACE_MS = 15_000;

/**
 * The parent's side of the tool host: started on the first run, started again after it died. It never
 * keeps Postroom alive by itself (unreferenced while idle), exits when Postroom goes (its IPC channel
 * closes, and it kills what it runs), and ignores the terminal's Ctrl-C so that a stop lets the runs
 * in flight finish. If the host dies mid-run (killed by hand), its process groups are killed from here
 * and the runs in flight fail with an error, as a program that could not be started does.
 */
class ToolHost {
  private child: ChildProcess | null = null;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;

  constructor(private readonly script: string) {
    process.once('exit', () => {
      for (const w of this.waiting.values()) if (w.pgid !== undefined) killGroupOf(w.pgid);
    });
  }

  run(command: string, args: readonly string[], options: RunToolOptions): Promise<ToolResult> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const request: ToolHostRequest = { id, command, args, timeoutMs: options.timeoutMs };
      if (options.env) request.env = options.env;
      if (options.cwd) request.cwd = options.cwd;
      const waiting: Waiting = { resolve, reject };
      if (options.onStart) waiting.onStart = options.onStart;
      this.waiting.set(id, waiting);
      try {
        const child = this.started();
        child.channel?.ref();
        child.send(request);
        // The host kills the run at its limit and answers at once; no answer long after means the host
        // itself is stuck: it is killed, and its 'exit' fails every run it had (they are retried).
        waiting.overdue = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs + HOST_GRACE_MS);
        waiting.overdue.unref();
      } catch (err) {
        this.waiting.delete(id);
        this.idleCheck();
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  private started(): ChildProcess {
    if (this.child) return this.child;
    // No inherited flags (a --cpu-prof of Postroom's): the host is a plain, small Node process.
    const child = fork(this.script, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.on('message', (m: ToolHostAnswer) => this.answer(m));
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      const why = new Error(`the tool host exited (${signal ?? `code ${code}`}) during the run`);
      for (const [id, w] of this.waiting) {
        clearTimeout(w.overdue);
        if (w.pgid !== undefined) killGroupOf(w.pgid);
        this.waiting.delete(id);
        w.reject(why);
      }
    });
    child.on('error', () => undefined); // 'exit' follows, or the send throws
    child.unref();
    this.child = child;
    return child;
  }

  private answer(m: ToolHostAnswer): void {
    const w = this.waiting.get(m.id);
    if (!w) return;
    if (m.type === 'start') {
      w.pgid = m.pid;
      w.onStart?.(m.pid);
      return;
    }
    this.waiting.delete(m.id);
    clearTimeout(w.overdue);
    this.idleCheck();
    if (m.type === 'done') w.resolve(m.result);
    else w.reject(Object.assign(new Error(m.message), m.code ? { code: m.code } : {}));
  }

  /** Idle, the host must not keep Postroom running. */
  private idleCheck(): void {
    if (this.waiting.size === 0) this.child?.channel?.unref();
  }
}

function killGroupOf(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // already gone
  }
}

let host: ToolHost | null | undefined;

/**
 * The tool host, or null when its compiled script is not there (a run from the sources without a
 * build; `npm start` and `npm test` build first) or `POSTROOM_TOOL_HOST=off`: programs then start from
 * this process, as before the host.
 */
function toolHost(): ToolHost | null {
  if (host !== undefined) return host;
  const here = fileURLToPath(import.meta.url);
  const script = here.endsWith('.ts')
    ? join(resolve(dirname(here), '..', '..'), 'dist', 'infra', 'documents', 'tool-host.js')
    : join(dirname(here), 'tool-host.js');
  host = process.env['POSTROOM_TOOL_HOST'] === 'off' || !existsSync(script) ? null : new ToolHost(script);
  return host;
}
