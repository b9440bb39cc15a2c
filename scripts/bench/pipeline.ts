import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postroomTopology } from '../../infra/broker/subscriptions.js';
import { openDatabase, type DatabaseHandle } from '../../infra/db/database.js';
import { cpuBetween, cpuSnapshot } from './cpu.js';
import type { BenchDovecot } from './dovecot.js';
import { collectPhase, waitDone, type PhaseResult } from './e2e-results.js';
import { BenchFakeDrive } from './fake-drive.js';
import { probeNewFiles, type FsProbe } from './fs-probe.js';
import { Appender, benchMail, pdfLike } from './mail.js';
import { mysqlActivity, mysqlStatus } from './mysql-status.js';
import type { BenchMode, BenchOptions } from './options.js';
import { PipelineProcess } from './pipeline-process.js';
import {
  Cleanup,
  databaseUrl,
  deleteBenchTopology,
  dropBenchDatabase,
  namespaceOf,
  type BenchServices,
} from './services.js';
import type { SqlKind } from './sql-trace.js';
import type { MetricJson } from './stats.js';
import type { WorkerSnapshot } from './worker-protocol.js';

/** The Postroom processes of a mode and their roles: all in one, or imap and api apart from the consumers. */
const PROCESSES: Record<BenchMode, { name: string; roles: string }[]> = {
  local: [{ name: 'postroom pipeline', roles: 'imap,analysis,drive' }],
  drive: [{ name: 'postroom pipeline', roles: 'imap,analysis,drive' }],
  split: [
    { name: 'postroom imap,api', roles: 'imap,api' },
    { name: 'postroom consumers', roles: 'analysis,drive' },
  ],
};

/** Statements of several processes, added up by kind, most frequent first. */
function mergeSql(lists: readonly SqlKind[][]): SqlKind[] {
  const byKind = new Map<string, SqlKind>();
  for (const k of lists.flat()) {
    const had = byKind.get(k.kind);
    byKind.set(
      k.kind,
      had ? { ...had, count: had.count + k.count, totalMs: had.totalMs + k.totalMs } : { ...k },
    );
  }
  return [...byKind.values()].sort((a, b) => b.count - a.count);
}

/** Metrics of several processes as one list: the values of a metric all processes have are put together. */
function mergeMetrics(lists: readonly MetricJson[][]): MetricJson[] {
  const byName = new Map<string, MetricJson>();
  for (const m of lists.flat()) {
    const had = byName.get(m.name);
    byName.set(m.name, had ? { ...had, values: [...had.values, ...m.values] } : m);
  }
  return [...byName.values()];
}

/** The memory run: one mail with a large attachment through a pipeline at rest. */
export interface MemoryResult {
  attachmentBytes: number;
  /** RSS after a full garbage collection, just before the APPEND (bytes). */
  baselineRss: number;
  /** Highest RSS sampled until the email was done (bytes). */
  peakRss: number;
  growth: number;
  /** Growth over the attachment's size. */
  growthRatio: number;
  /** APPEND to done (s). */
  seconds: number;
  done: boolean;
  verdict: string | null;
  reason: string | null;
  driveStatus: string | null;
  /**
   * Highest RSS over baseline in each stage of the mail (bytes): APPEND until the email row was
   * committed (download, parse, blob store), until the verdict (analysis), until done (filing).
   */
  peakByStage: { ingest: number; analysis: number; filing: number } | null;
}

/** Everything measured in one storage mode. */
export interface ModeResult {
  mode: BenchMode;
  phases: PhaseResult[];
  memory: MemoryResult | null;
  /** Highest RSS sampled before the memory run, and over the whole run (bytes; the largest process's when split). */
  steadyPeakRss: number;
  peakRss: number;
  /** The kernel's peak RSS of the pipeline process (VmHWM), over its whole life. */
  kernelPeakRss: number | null;
  /** Files written (local: under STORAGE_DIR; drive: in the fake), and the fake's request counts. */
  filesStored: number;
  /** New files made in STORAGE_DIR's file system just before the backlog (local and split). */
  fsProbe: FsProbe | null;
  fakeDrive: { folders: number; mismatches: number; requests: Record<string, number> } | null;
  /** The pipeline's log and how many warnings and errors it holds. */
  logFile: string;
  logWarnings: number;
  logErrors: number;
}

async function countFiles(dir: string): Promise<number> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).length;
}

/**
 * Runs the pipeline (roles imap, analysis, drive) in a process of its own against `dovecot` (split:
 * imap and api in one process, the consumers in another), in one mode: a backlog of
 * BENCH_BACKLOG_EMAILS mails moved into the mailbox at once, a burst of BENCH_EMAILS mails, then
 * BENCH_PACED_EMAILS at BENCH_RATE, then the memory run (one process only). Each mode has its own
 * database, broker namespace and mailbox, removed afterwards.
 */
export async function runPipelineMode(args: {
  mode: BenchMode;
  opts: BenchOptions;
  services: BenchServices;
  dovecot: BenchDovecot;
  progress: (line: string) => void;
  /** The run's cleanup, which also runs this mode's (on Ctrl-C, say). */
  runCleanup: Cleanup;
}): Promise<ModeResult> {
  const { mode, opts, services, dovecot, progress } = args;
  const cleanup = new Cleanup();
  args.runCleanup.add(`clean up the ${mode} run`, () => cleanup.run());
  const { url: mysqlUrl, name: dbName } = databaseUrl(services, mode);
  const namespace = namespaceOf(services, mode);
  const mailbox = `bench-${mode}`;
  const logFile = join(tmpdir(), `postroom-bench-${services.runId}-${mode}.log`);
  let handle: DatabaseHandle | null = null;
  try {
    await dovecot.createMailbox(mailbox);
    const env: Record<string, string> = {
      AMQP_URL: services.amqpUrl,
      MYSQL_URL: mysqlUrl,
      IMAP_HOST: dovecot.host,
      IMAP_PORT: String(dovecot.port),
      IMAP_SECURE: 'false',
      IMAP_USER: dovecot.user,
      IMAP_PASSWORD: dovecot.password,
      IMAP_MAILBOX: mailbox,
      LOG_LEVEL: opts.BENCH_LOG_LEVEL,
    };
    let storageDir: string | null = null;
    let fsProbe: FsProbe | null = null;
    let fake: BenchFakeDrive | null = null;
    if (mode !== 'drive') {
      const top = await mkdtemp(join(tmpdir(), 'postroom-bench-storage-'));
      // Removed at the end of the whole run, not of this mode: on ext4 without a journal, files
      // deleted in the last minutes slow every file made after them (`fs-probe.ts`).
      args.runCleanup.add(`remove the ${mode} STORAGE_DIR`, () => rm(top, { recursive: true, force: true }));
      fsProbe = probeNewFiles(join(top, 'probe'));
      storageDir = join(top, 'storage');
      env['STORAGE_DIR'] = storageDir;
    } else {
      fake = await BenchFakeDrive.start();
      const f = fake;
      cleanup.add('stop the fake Drive', () => f.close());
      env['DRIVE_ACCESS_TOKEN'] = fake.token;
      env['DRIVE_API_URL'] = fake.url;
    }
    cleanup.add(`drop database ${dbName}`, () => dropBenchDatabase(services, dbName));
    cleanup.add(`delete broker namespace ${namespace}`, () =>
      deleteBenchTopology(services, postroomTopology({ namespace })),
    );

    const appender = await Appender.open(dovecot, mailbox, opts.BENCH_APPEND_CONNECTIONS);
    cleanup.add('close the IMAP appenders', () => appender.close());
    const build = (prefix: string) => (i: number) => {
      const messageId = `${prefix}${i}@bench.postroom`;
      return {
        messageId,
        raw: benchMail({ messageId, index: i, attachment: pdfLike(opts.BENCH_ATTACHMENT_BYTES) }),
      };
    };
    // The backlog waits in a mailbox of its own until the pipeline is up, then moves in at once.
    const backlogPrefix = `bench-${services.runId}-${mode}-backlog-`;
    const staging = `${mailbox}-backlog`;
    if (opts.BENCH_BACKLOG_EMAILS > 0) {
      await dovecot.createMailbox(staging);
      progress(`${mode}: filling a backlog of ${opts.BENCH_BACKLOG_EMAILS} mails`);
      const stager = await Appender.open(dovecot, staging, opts.BENCH_APPEND_CONNECTIONS);
      try {
        await stager.burst(opts.BENCH_BACKLOG_EMAILS, build(backlogPrefix));
      } finally {
        await stager.close();
      }
    }

    const workers = PROCESSES[mode].map((p, i) => {
      const worker = PipelineProcess.spawn({
        cpuProfDir: opts.BENCH_CPU_PROF,
        label: PROCESSES[mode].length > 1 ? `${mode}-${i + 1}` : mode,
      });
      cleanup.add(`stop ${p.name}`, () => worker.stop());
      return { ...p, worker };
    });
    for (const w of workers) {
      const started = await w.worker.start({
        env: { ...env, ROLES: w.roles },
        namespace,
        logFile:
          workers.length > 1 ? logFile.replace(/\.log$/, `-${w.roles.replace(/,/g, '-')}.log`) : logFile,
        sampleMs: 50,
      });
      progress(`${mode}: ${w.name} (ROLES=${w.roles}) process ${started.pid} ready in ${started.readyMs} ms`);
    }
    const worker = workers[0]!.worker;
    handle = openDatabase(mysqlUrl, { connectionLimit: 2 });
    const db = handle.db;
    const named = new Map<number, string>([
      ...workers.map((w) => [w.worker.pid, w.name] as [number, string]),
      [process.pid, 'bench driver (appends, fake Drive)'],
    ]);

    const phases: PhaseResult[] = [];
    const runPhase = async (kind: PhaseResult['kind'], count: number) => {
      if (count === 0) return;
      const prefix = kind === 'backlog' ? backlogPrefix : `bench-${services.runId}-${mode}-${kind}-`;
      await Promise.all(workers.map((w) => w.worker.reset()));
      const status0 = await mysqlStatus(services.mysqlServerUrl);
      const cpu0 = cpuSnapshot(named);
      progress(
        `${mode}: ${kind} of ${count} mails${kind === 'paced' ? ` at ${opts.BENCH_RATE}/s` : kind === 'backlog' ? ' moved into the mailbox at once' : ''}`,
      );
      const log =
        kind === 'backlog'
          ? await appender.moveAll(
              staging,
              mailbox,
              Array.from({ length: count }, (_, i) => `${prefix}${i}@bench.postroom`),
            )
          : kind === 'burst'
            ? await appender.burst(count, build(prefix))
            : await appender.paced(count, opts.BENCH_RATE, build(prefix));
      const deadline = Date.now() + opts.BENCH_TIMEOUT_SECONDS * 1000;
      const done = await waitDone(db, prefix, log.appendedAt.size, deadline);
      const cpu = cpuBetween(cpu0, cpuSnapshot(named));
      const mysql = mysqlActivity(status0, await mysqlStatus(services.mysqlServerUrl));
      const processes: Record<string, WorkerSnapshot> = {};
      for (const w of workers) processes[w.name] = await w.worker.snapshot();
      const phase = await collectPhase({
        kind,
        db,
        prefix,
        sent: count,
        log,
        timedOut: done < log.appendedAt.size,
        processes,
        cpu,
        mysql,
        sql: mergeSql(await Promise.all(workers.map((w) => w.worker.sql()))),
        metrics: mergeMetrics(
          await Promise.all(workers.map(async (w) => (await w.worker.metrics()) as MetricJson[])),
        ),
      });
      phases.push(phase);
      progress(
        `${mode}: ${kind}: ${phase.done}/${count} done in ${phase.seconds.toFixed(1)} s, ${phase.emailsPerSecond.toFixed(1)} emails/s, p99 ${phase.latencyMs.p99.toFixed(0)} ms`,
      );
    };
    await runPhase('backlog', opts.BENCH_BACKLOG_EMAILS);
    await runPhase('burst', opts.BENCH_EMAILS);
    await runPhase('paced', opts.BENCH_PACED_EMAILS);
    const peakOfAll = async () =>
      Math.max(...(await Promise.all(workers.map(async (w) => (await w.worker.snapshot()).peakTotal))));
    const steadyPeakRss = await peakOfAll();

    let memory: MemoryResult | null = null;
    if (opts.BENCH_BIG_BYTES > 0 && workers.length === 1) {
      progress(`${mode}: memory run with a ${(opts.BENCH_BIG_BYTES / 1048576).toFixed(1)} MiB attachment`);
      const messageId = `bench-${services.runId}-${mode}-big-0@bench.postroom`;
      let raw: Buffer | null = benchMail({
        messageId,
        index: 0,
        attachment: pdfLike(opts.BENCH_BIG_BYTES),
        subject: 'Large attachment',
      });
      const baselineRss = await worker.baseline();
      const t0 = Date.now();
      await appender.burst(1, () => ({ messageId, raw: raw! }));
      raw = null;
      const prefix = messageId.replace('0@bench.postroom', '');
      const done = (await waitDone(db, prefix, 1, Date.now() + 180_000)) === 1;
      const seconds = (Date.now() - t0) / 1000;
      const snap = await worker.snapshot();
      const samples = await worker.series();
      const att = await db
        .selectFrom('attachments')
        .innerJoin('emails', 'emails.id', 'attachments.email_id')
        .select([
          'attachments.verdict',
          'attachments.reason',
          'attachments.drive_status',
          'attachments.analyzed_at',
          'emails.created_at',
          'emails.done_at',
        ])
        .where('emails.message_id', '=', messageId)
        .executeTakeFirst();
      const peakIn = (from: number, to: number | undefined) =>
        Math.max(
          0,
          ...samples.filter(([t]) => t >= from && t <= (to ?? Infinity)).map(([, rss]) => rss - baselineRss),
        );
      const recordedAt = att?.created_at.getTime();
      const analyzedAt = att?.analyzed_at?.getTime();
      memory = {
        attachmentBytes: opts.BENCH_BIG_BYTES,
        baselineRss,
        peakRss: snap.peakWindow,
        growth: snap.peakWindow - baselineRss,
        growthRatio: (snap.peakWindow - baselineRss) / opts.BENCH_BIG_BYTES,
        seconds,
        done,
        verdict: att?.verdict ?? null,
        reason: att?.reason ?? null,
        driveStatus: att?.drive_status ?? null,
        peakByStage:
          recordedAt && analyzedAt
            ? {
                ingest: peakIn(t0, recordedAt),
                analysis: peakIn(recordedAt, analyzedAt),
                filing: peakIn(analyzedAt, att?.done_at?.getTime()),
              }
            : null,
      };
      progress(
        `${mode}: memory run: +${(memory.growth / 1048576).toFixed(0)} MiB peak RSS, ${memory.verdict ?? '?'}, ${memory.driveStatus ?? '?'}`,
      );
    }
    const peakRss = await peakOfAll();
    const kernelPeaks = await Promise.all(workers.map((w) => w.worker.kernelPeakRss()));
    const kernelPeakRss = kernelPeaks.includes(null) ? null : Math.max(...(kernelPeaks as number[]));
    const filesStored = storageDir ? await countFiles(storageDir) : (fake?.fileCount() ?? 0);
    for (const w of workers) await w.worker.stop();
    const logText = await readFile(logFile, 'utf8').catch(() => '');
    return {
      mode,
      phases,
      memory,
      steadyPeakRss,
      peakRss,
      kernelPeakRss,
      filesStored,
      fsProbe,
      fakeDrive: fake
        ? {
            folders: fake.folderCount(),
            mismatches: fake.mismatches,
            requests: Object.fromEntries(fake.requests),
          }
        : null,
      logFile,
      logWarnings: (logText.match(/"level":"warn"/g) ?? []).length,
      logErrors: (logText.match(/"level":"(error|fatal)"/g) ?? []).length,
    };
  } finally {
    await handle?.db.destroy().catch(() => undefined);
    const failed = await cleanup.run();
    for (const f of failed) progress(`${mode}: cleanup failed: ${f}`);
  }
}
