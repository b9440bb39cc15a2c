/**
 * Runs an outside program (soffice, pdftoppm) as the leader of its own process group, with a time
 * limit after which the whole group is killed: soffice starts `oosplash` and `soffice.bin`, and killing
 * only the first would leave the others running. The group is killed once more after the leader exits,
 * so nothing it started outlives the call, and every group still running is killed when this process
 * exits (a stop in the middle of a conversion: the message is redelivered and converted again).
 */
import { spawn } from 'node:child_process';

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

/** Runs `command args` in a new process group; resolves when it has exited (or was killed), never rejects on a non-zero exit. */
export function runTool(
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
