import type { MetricJson } from './stats.js';

/**
 * Messages between the benchmark driver and the pipeline process (`pipeline-worker.ts`), over the
 * IPC channel of `child_process.fork`. The pipeline runs in a process of its own so that its RSS, CPU
 * time and event loop are its own: the driver's IMAP appends and the fake Drive server do not count.
 */

/** What the driver asks. */
export type WorkerRequest =
  | {
      id: number;
      op: 'start';
      /** Variables handed to `loadConfig` (the worker reads no other configuration). */
      env: Record<string, string>;
      /** Broker namespace of this run. */
      namespace: string;
      /** File the pipeline's pino log goes to. */
      logFile: string;
      /** RSS sampling period (ms). */
      sampleMs: number;
    }
  /** Zeroes the metrics registry, the CPU and event-loop counters and the RSS window. */
  | { id: number; op: 'reset' }
  /** Collects garbage, waits, and starts a new RSS window at the current RSS (the baseline). */
  | { id: number; op: 'baseline' }
  | { id: number; op: 'snapshot' }
  /** The RSS samples `[ms since the epoch, bytes]` taken since the last `baseline`; stops recording them. */
  | { id: number; op: 'series' }
  | { id: number; op: 'metrics' }
  /** Statements sent since the last `reset`, by kind (see `sql-trace.ts`). */
  | { id: number; op: 'sql' }
  /** Stops Postroom cleanly, then the process exits. */
  | { id: number; op: 'stop' };

/** The answer to one request. */
export type WorkerReply =
  { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

/** What `start` answers. */
export interface WorkerStarted {
  pid: number;
  port: number;
  /** Milliseconds from `start` until /readyz answered 200. */
  readyMs: number;
}

/** What `snapshot` answers: the process since the last `reset` (or `baseline` for the RSS window). */
export interface WorkerSnapshot {
  rss: number;
  /** Highest RSS sampled since the last reset or baseline. */
  peakWindow: number;
  /** Highest RSS sampled since the process started. */
  peakTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** CPU time since the last reset (ms). */
  cpuUserMs: number;
  cpuSystemMs: number;
  /** Wall time since the last reset (ms). */
  wallMs: number;
  /** Event-loop delay since the last reset (ms). */
  loopDelay: { mean: number; p99: number; max: number };
}

/** What `metrics` answers. */
export type WorkerMetrics = MetricJson[];
