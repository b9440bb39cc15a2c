import { fork, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { SqlKind } from './sql-trace.js';
import type {
  WorkerMetrics,
  WorkerReply,
  WorkerRequest,
  WorkerSnapshot,
  WorkerStarted,
} from './worker-protocol.js';

type Op = WorkerRequest['op'];
type Payload<O extends Op> = Omit<Extract<WorkerRequest, { op: O }>, 'id' | 'op'>;

/** The driver's handle on one pipeline process (`pipeline-worker.ts`). */
export class PipelineProcess {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private exited: Error | null = null;
  private constructor(private readonly child: ChildProcess) {
    child.on('message', (raw) => {
      const reply = raw as WorkerReply;
      const w = this.waiting.get(reply.id);
      if (!w) return;
      this.waiting.delete(reply.id);
      if (reply.ok) w.resolve(reply.result);
      else w.reject(new Error(`pipeline process: ${reply.error}`));
    });
    child.on('exit', (code, signal) => {
      this.exited = new Error(`pipeline process exited (${code ?? signal})`);
      for (const w of this.waiting.values()) w.reject(this.exited);
      this.waiting.clear();
    });
  }

  /** Process id of the pipeline. */
  get pid(): number {
    return this.child.pid ?? 0;
  }

  /**
   * Forks the pipeline process. `--expose-gc` lets the memory run start from a collected heap;
   * `cpuProfDir` adds `--cpu-prof` (the profile is written when the process exits).
   */
  static spawn(opts: { cpuProfDir?: string; label: string }): PipelineProcess {
    const execArgv = ['--expose-gc'];
    if (opts.cpuProfDir)
      execArgv.push(
        '--cpu-prof',
        `--cpu-prof-dir=${opts.cpuProfDir}`,
        `--cpu-prof-name=pipeline-${opts.label}.cpuprofile`,
      );
    const child = fork(fileURLToPath(new URL('./pipeline-worker.js', import.meta.url)), [], {
      execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new PipelineProcess(child);
  }

  start(p: Payload<'start'>): Promise<WorkerStarted> {
    return this.call('start', p) as Promise<WorkerStarted>;
  }
  reset(): Promise<void> {
    return this.call('reset', {}) as Promise<void>;
  }
  /** Collects garbage and starts a new RSS window; resolves with the RSS then (bytes). */
  baseline(): Promise<number> {
    return this.call('baseline', {}) as Promise<number>;
  }
  snapshot(): Promise<WorkerSnapshot> {
    return this.call('snapshot', {}) as Promise<WorkerSnapshot>;
  }
  /** RSS samples `[ms, bytes]` since the last `baseline`. */
  series(): Promise<[number, number][]> {
    return this.call('series', {}) as Promise<[number, number][]>;
  }
  /** Statements the pipeline sent since the last reset, by kind. */
  sql(): Promise<SqlKind[]> {
    return this.call('sql', {}) as Promise<SqlKind[]>;
  }
  metrics(): Promise<WorkerMetrics> {
    return this.call('metrics', {}) as Promise<WorkerMetrics>;
  }

  /** The kernel's own record of the process's peak RSS (`VmHWM`, bytes), or null off Linux. */
  async kernelPeakRss(): Promise<number | null> {
    const status = await readFile(`/proc/${this.pid}/status`, 'utf8').catch(() => '');
    const kb = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
    return kb ? Number(kb) * 1024 : null;
  }

  /** Stops Postroom and waits for the process to exit (killing it after `timeoutMs`). */
  async stop(timeoutMs = 30_000): Promise<void> {
    if (this.exited) return;
    const exit = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      await this.call('stop', {}).catch(() => undefined);
      await exit;
    } finally {
      clearTimeout(timer);
    }
  }

  private call<O extends Op>(op: O, payload: Payload<O>): Promise<unknown> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.child.send({ id, op, ...payload } as WorkerRequest);
    });
  }
}
