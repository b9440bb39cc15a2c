/**
 * The pipeline process of the benchmark: `startPostroom` with the roles and configuration the driver
 * sends, an RSS sampler, and answers to the driver's requests (see `worker-protocol.ts`). Started by
 * `pipeline-process.ts` with `child_process.fork`; not meant to be run by hand.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import { loadConfig } from '../../infra/config.js';
import { createLogger } from '../../infra/logger.js';
import { registry } from '../../infra/metrics.js';
import { startPostroom, type Postroom } from '../../main.js';
import { installSqlTrace } from './sql-trace.js';
import type { WorkerReply, WorkerRequest, WorkerSnapshot, WorkerStarted } from './worker-protocol.js';

let postroom: Postroom | null = null;
const sqlTrace = installSqlTrace();
let peakTotal = 0;
let peakWindow = 0;
let cpuFrom = process.cpuUsage();
let wallFrom = Date.now();
/** Sampling period of the event-loop delay (ms); the histogram's values include it, so it is taken off. */
const LOOP_RESOLUTION_MS = 10;
const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
loop.enable();

/** RSS samples kept from `baseline` to `series` (at most an hour's worth at 50 ms). */
let series: [number, number][] | null = null;
const sample = () => {
  const rss = process.memoryUsage.rss();
  if (rss > peakTotal) peakTotal = rss;
  if (rss > peakWindow) peakWindow = rss;
  if (series && series.length < 72_000) series.push([Date.now(), rss]);
  return rss;
};

function send(reply: WorkerReply): void {
  process.send?.(reply);
}

async function waitReady(port: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      last = await res.text();
      if (res.status === 200) return;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the pipeline was not ready within ${timeoutMs} ms: ${last}`);
}

async function handle(req: WorkerRequest): Promise<unknown> {
  switch (req.op) {
    case 'start': {
      const started = Date.now();
      setInterval(sample, req.sampleMs).unref();
      const log = createLogger(
        req.env['LOG_LEVEL'] ?? 'warn',
        pino.destination({ dest: req.logFile, sync: false, mkdir: true }),
      );
      postroom = await startPostroom(loadConfig(req.env), { log, namespace: req.namespace, httpPort: 0 });
      await waitReady(postroom.port, 60_000);
      return { pid: process.pid, port: postroom.port, readyMs: Date.now() - started } satisfies WorkerStarted;
    }
    case 'reset':
      registry.resetMetrics();
      sqlTrace.reset();
      cpuFrom = process.cpuUsage();
      wallFrom = Date.now();
      loop.reset();
      peakWindow = sample();
      return null;
    case 'baseline': {
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      await new Promise((r) => setTimeout(r, 250));
      gc?.();
      await new Promise((r) => setTimeout(r, 250));
      peakWindow = 0;
      series = [];
      return sample();
    }
    case 'series': {
      const taken = series ?? [];
      series = null;
      return taken;
    }
    case 'snapshot': {
      const m = process.memoryUsage();
      sample();
      const cpu = process.cpuUsage(cpuFrom);
      return {
        rss: m.rss,
        peakWindow,
        peakTotal,
        heapUsed: m.heapUsed,
        external: m.external,
        arrayBuffers: m.arrayBuffers,
        cpuUserMs: cpu.user / 1000,
        cpuSystemMs: cpu.system / 1000,
        wallMs: Date.now() - wallFrom,
        loopDelay: {
          mean: Math.max(0, loop.mean / 1e6 - LOOP_RESOLUTION_MS),
          p99: Math.max(0, loop.percentile(99) / 1e6 - LOOP_RESOLUTION_MS),
          max: Math.max(0, loop.max / 1e6 - LOOP_RESOLUTION_MS),
        },
      } satisfies WorkerSnapshot;
    }
    case 'metrics':
      return registry.getMetricsAsJSON();
    case 'sql':
      return sqlTrace.snapshot();
    case 'stop':
      await postroom?.stop();
      postroom = null;
      setTimeout(() => process.exit(0), 50);
      return null;
  }
}

process.on('message', (raw) => {
  const req = raw as WorkerRequest;
  handle(req).then(
    (result) => send({ id: req.id, ok: true, result }),
    (err: unknown) => send({ id: req.id, ok: false, error: (err as Error)?.stack ?? String(err) }),
  );
});
// The driver went away: do not linger holding queues and connections.
process.on('disconnect', () => {
  void (postroom?.stop() ?? Promise.resolve()).finally(() => process.exit(0));
});
