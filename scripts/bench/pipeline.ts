import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postroomTopology } from '../../infra/broker/subscriptions.js';
import { openDatabase, type DatabaseHandle } from '../../infra/db/database.js';
import { cpuBetween, cpuSnapshot } from './cpu.js';
import type { BenchDovecot } from './dovecot.js';
import { collectPhase, waitDone, type PhaseResult } from './e2e-results.js';
import { BenchFakeDrive } from './fake-drive.js';
import { Appender, benchMail, pdfLike } from './mail.js';
import { mysqlActivity, mysqlStatus } from './mysql-status.js';
import type { BenchOptions } from './options.js';
import { PipelineProcess } from './pipeline-process.js';
import {
  Cleanup,
  databaseUrl,
  deleteBenchTopology,
  dropBenchDatabase,
  namespaceOf,
  type BenchServices,
} from './services.js';
import type { MetricJson } from './stats.js';

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
  mode: 'local' | 'drive';
  phases: PhaseResult[];
  memory: MemoryResult | null;
  /** Highest RSS sampled before the memory run, and over the whole run (bytes). */
  steadyPeakRss: number;
  peakRss: number;
  /** The kernel's peak RSS of the pipeline process (VmHWM), over its whole life. */
  kernelPeakRss: number | null;
  /** Files written (local: under STORAGE_DIR; drive: in the fake), and the fake's request counts. */
  filesStored: number;
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
 * Runs the pipeline (roles imap, analysis, drive) in a process of its own against `dovecot`, in one
 * storage mode: a burst of BENCH_EMAILS mails, then BENCH_PACED_EMAILS at BENCH_RATE, then the memory
 * run. Each mode has its own database, broker namespace and mailbox, removed afterwards.
 */
export async function runPipelineMode(args: {
  mode: 'local' | 'drive';
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
      ROLES: 'imap,analysis,drive',
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
    let fake: BenchFakeDrive | null = null;
    if (mode === 'local') {
      storageDir = await mkdtemp(join(tmpdir(), 'postroom-bench-storage-'));
      const dir = storageDir;
      cleanup.add('remove STORAGE_DIR', () => rm(dir, { recursive: true, force: true }));
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

    const worker = PipelineProcess.spawn({ cpuProfDir: opts.BENCH_CPU_PROF, label: mode });
    cleanup.add('stop the pipeline process', () => worker.stop());
    const started = await worker.start({ env, namespace, logFile, sampleMs: 50 });
    progress(`${mode}: pipeline process ${started.pid} ready in ${started.readyMs} ms`);
    handle = openDatabase(mysqlUrl, { connectionLimit: 2 });
    const db = handle.db;
    const named = new Map([
      [worker.pid, 'postroom pipeline'],
      [process.pid, 'bench driver (appends, fake Drive)'],
    ]);

    const appender = await Appender.open(dovecot, mailbox, opts.BENCH_APPEND_CONNECTIONS);
    cleanup.add('close the IMAP appenders', () => appender.close());
    const phases: PhaseResult[] = [];
    const runPhase = async (kind: 'burst' | 'paced', count: number) => {
      if (count === 0) return;
      const prefix = `bench-${services.runId}-${mode}-${kind}-`;
      const build = (i: number) => {
        const messageId = `${prefix}${i}@bench.postroom`;
        return {
          messageId,
          raw: benchMail({ messageId, index: i, attachment: pdfLike(opts.BENCH_ATTACHMENT_BYTES) }),
        };
      };
      await worker.reset();
      const status0 = await mysqlStatus(services.mysqlServerUrl);
      const cpu0 = cpuSnapshot(named);
      progress(`${mode}: ${kind} of ${count} mails${kind === 'paced' ? ` at ${opts.BENCH_RATE}/s` : ''}`);
      const log =
        kind === 'burst'
          ? await appender.burst(count, build)
          : await appender.paced(count, opts.BENCH_RATE, build);
      const deadline = Date.now() + opts.BENCH_TIMEOUT_SECONDS * 1000;
      const done = await waitDone(db, prefix, log.appendedAt.size, deadline);
      const cpu = cpuBetween(cpu0, cpuSnapshot(named));
      const mysql = mysqlActivity(status0, await mysqlStatus(services.mysqlServerUrl));
      const phase = await collectPhase({
        kind,
        db,
        prefix,
        sent: count,
        log,
        timedOut: done < log.appendedAt.size,
        process: await worker.snapshot(),
        cpu,
        mysql,
        sql: await worker.sql(),
        metrics: (await worker.metrics()) as MetricJson[],
      });
      phases.push(phase);
      progress(
        `${mode}: ${kind}: ${phase.done}/${count} done in ${phase.seconds.toFixed(1)} s, ${phase.emailsPerSecond.toFixed(1)} emails/s, p99 ${phase.latencyMs.p99.toFixed(0)} ms`,
      );
    };
    await runPhase('burst', opts.BENCH_EMAILS);
    await runPhase('paced', opts.BENCH_PACED_EMAILS);
    const steadyPeakRss = (await worker.snapshot()).peakTotal;

    let memory: MemoryResult | null = null;
    if (opts.BENCH_BIG_BYTES > 0) {
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
    const peakRss = (await worker.snapshot()).peakTotal;
    const kernelPeakRss = await worker.kernelPeakRss();
    const filesStored = storageDir ? await countFiles(storageDir) : (fake?.fileCount() ?? 0);
    await worker.stop();
    const logText = await readFile(logFile, 'utf8').catch(() => '');
    return {
      mode,
      phases,
      memory,
      steadyPeakRss,
      peakRss,
      kernelPeakRss,
      filesStored,
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
