/**
 * `npm run bench [-- --quick | --emails N | --storage local,drive | --sections ceiling,runner,e2e ...]`:
 * measures Postroom on the real services of this machine in one run (issue 10) and prints a table, then
 * one JSON line with every figure. Progress goes to stderr. Options: `options.ts` (`BENCH_*`).
 *
 * 1. the ceiling: raw amqplib publish with confirms and consume with acks; raw MySQL commits; raw
 *    imapflow FETCH and mailparser parse of benchmark mails (each with the CPU it cost);
 * 2. the consumer runner with a no-op handler, against the raw consume rate;
 * 3. end to end: mails appended to a throwaway Dovecot, through a pipeline process running the roles
 *    imap, analysis and drive, with local storage and with a fake Drive server; a burst, then a paced run;
 * 4. memory: the pipeline's peak RSS, and its growth while a 25 MiB attachment passes through.
 *
 * Every database, broker namespace, mailbox and temporary directory is this run's own and is removed at
 * the end (also on Ctrl-C). A benchmark reports and does not fail: the exit code is 0 unless a service
 * could not be reached (1).
 */
import { cpus, loadavg } from 'node:os';
import { pino } from 'pino';
import { loadConfig, loadDotEnv } from '../../infra/config.js';
import { connectDatabase, type DatabaseHandle } from '../../infra/db/database.js';
import { createLogger } from '../../infra/logger.js';
import {
  amqpCeiling,
  imapCeiling,
  mysqlCeiling,
  type AmqpCeiling,
  type ImapCeiling,
  type MysqlCeiling,
} from './ceiling.js';
import { startBenchDovecot, type BenchDovecot } from './dovecot.js';
import { readBenchOptions, runsSection, storageModes, type BenchOptions } from './options.js';
import { runPipelineMode, type ModeResult } from './pipeline.js';
import { hintsFor } from './hints.js';
import { evaluateTargets, renderReport, toJsonLine, type BenchResult } from './report.js';
import { runnerOverhead, runnerTopology, validationRate } from './runner.js';
import {
  checkServices,
  Cleanup,
  databaseUrl,
  deleteBenchQueue,
  deleteBenchTopology,
  dropBenchDatabase,
  mysqlServerOf,
  namespaceOf,
  newRunId,
  type BenchServices,
  type ServiceFacts,
} from './services.js';

const progress = (line: string) =>
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const fail = (message: string): never => {
  process.stderr.write(`${message}\n`);
  process.exit(1);
};

loadDotEnv();
const opts: BenchOptions = (() => {
  try {
    return readBenchOptions(process.argv.slice(2), process.env);
  } catch (err) {
    return fail((err as Error).message);
  }
})();
const config = loadConfig();
const services: BenchServices = {
  amqpUrl: config.AMQP_URL,
  mysqlServerUrl: mysqlServerOf(config.MYSQL_URL),
  runId: newRunId(),
};
const facts: ServiceFacts = await checkServices(services).catch((err: unknown) =>
  fail(`Benchmark not run: ${(err as Error).message}`),
);

const startedAt = new Date();
const load = loadavg();
const cleanup = new Cleanup();
let interrupted = false;
process.once('SIGINT', () => {
  interrupted = true;
  progress('interrupted: cleaning up');
  void cleanup.run().finally(() => process.exit(130));
});
const log = createLogger('error', pino.destination(2));
const notes: string[] = [];
let exitCode = 0;
let ceiling: BenchResult['ceiling'] = null;
let runner: BenchResult['runner'] = null;
const e2e: ModeResult[] = [];

/** Runs one part; a failure becomes a note, and the run goes on. */
async function section<T>(what: string, fn: () => Promise<T>): Promise<T | null> {
  if (interrupted) return null;
  try {
    return await fn();
  } catch (err) {
    notes.push(`${what} failed: ${(err as Error).message.split('\n')[0]}`);
    progress(`${what} failed: ${(err as Error).stack ?? String(err)}`);
    return null;
  }
}

/** The benchmark's Dovecot, started once for the IMAP ceiling and the end-to-end runs. */
async function startDovecot(): Promise<BenchDovecot | null> {
  try {
    const d = await startBenchDovecot();
    cleanup.add('stop Dovecot', () => d.stop());
    return d;
  } catch (err) {
    exitCode = 1;
    notes.push(`IMAP not measured: ${(err as Error).message.split('\n')[0]}`);
    return null;
  }
}

try {
  const dovecot = runsSection(opts, 'ceiling') || runsSection(opts, 'e2e') ? await startDovecot() : null;
  let core: DatabaseHandle | null = null;
  let amqp: AmqpCeiling | null = null;
  let mysql: MysqlCeiling | null = null;
  if (runsSection(opts, 'ceiling') || runsSection(opts, 'runner')) {
    const { url, name } = databaseUrl(services, 'core');
    core = await connectDatabase(url);
    const db = core;
    cleanup.add(`drop database ${name}`, () => dropBenchDatabase(services, name));
    cleanup.add('close the core pool', () => db.db.destroy());
    progress(`ceiling: raw AMQP, ${opts.BENCH_RAW_MESSAGES} messages of 1 KiB`);
    const ns = namespaceOf(services, 'ceiling');
    cleanup.add(`delete queue ${ns}.raw`, () => deleteBenchQueue(services, `${ns}.raw`));
    amqp = await section('the AMQP ceiling', () =>
      amqpCeiling({
        url: services.amqpUrl,
        queue: `${ns}.raw`,
        messages: opts.BENCH_RAW_MESSAGES,
        bytes: 1024,
        window: opts.BENCH_RAW_WINDOW,
        prefetch: opts.BENCH_RAW_PREFETCH,
      }),
    );
    if (runsSection(opts, 'ceiling')) {
      progress(`ceiling: raw MySQL, ${opts.BENCH_MYSQL_COMMITS} commits`);
      mysql = await section('the MySQL ceiling', () =>
        mysqlCeiling({ url, commits: opts.BENCH_MYSQL_COMMITS, connections: opts.BENCH_MYSQL_CONNECTIONS }),
      );
    }
    let imap: ImapCeiling | null = null;
    if (runsSection(opts, 'ceiling') && dovecot) {
      progress(`ceiling: raw IMAP, ${opts.BENCH_IMAP_MAILS} mails fetched, then parsed`);
      imap = await section('the IMAP ceiling', () =>
        imapCeiling({
          server: dovecot,
          mailbox: `ceiling-${services.runId}`,
          mails: opts.BENCH_IMAP_MAILS,
          attachmentBytes: opts.BENCH_ATTACHMENT_BYTES,
        }),
      );
    }
    if (amqp && mysql) ceiling = { amqp, mysql, imap };
  }

  if (runsSection(opts, 'runner') && core && amqp) {
    const prefetches = [...new Set([opts.BENCH_RAW_PREFETCH, 4])];
    const ns = namespaceOf(services, 'runner');
    cleanup.add(`delete broker namespace ${ns}`, () =>
      deleteBenchTopology(
        services,
        runnerTopology(
          ns,
          prefetches.map((p) => `bench-noop-p${p}`),
        ),
      ),
    );
    progress(
      `runner: ${opts.BENCH_RUNNER_MESSAGES} events, no-op handler, prefetch ${prefetches.join(' and ')}`,
    );
    const db = core.db;
    const runs = await section('the runner benchmark', () =>
      runnerOverhead({
        amqpUrl: services.amqpUrl,
        namespace: ns,
        db,
        log,
        messages: opts.BENCH_RUNNER_MESSAGES,
        bytes: 1024,
        prefetches,
      }),
    );
    const same = runs?.find((r) => r.prefetch === opts.BENCH_RAW_PREFETCH);
    if (runs && same)
      runner = {
        runs,
        rawConsumePerSecond: amqp.consumePerSecond,
        slowdown: amqp.consumePerSecond / same.perSecond,
        validationPerSecond: validationRate(opts.BENCH_RUNNER_MESSAGES, 1024),
      };
  }

  if (runsSection(opts, 'e2e')) {
    if (!dovecot) notes.push('end to end not measured: no Dovecot');
    for (const mode of dovecot && !interrupted ? storageModes(opts) : []) {
      const result = await section(`the end-to-end run (${mode})`, () =>
        runPipelineMode({ mode, opts, services, dovecot: dovecot!, progress, runCleanup: cleanup }),
      );
      if (result) e2e.push(result);
    }
  }
} finally {
  const failed = await cleanup.run();
  for (const f of failed) notes.push(`cleanup: ${f}`);
}
if (interrupted) process.exit(130);

if (opts.BENCH_BIG_BYTES === 26_214_400)
  notes.push(
    'the memory run sends an attachment of exactly 26214400 bytes = ATTACHMENT_MAX_BYTES (default): at the limit, which only rejects larger files; its verdict is shown above',
  );
if (opts.BENCH_CPU_PROF) notes.push(`CPU profiles of the pipeline process are in ${opts.BENCH_CPU_PROF}`);
const partial: Omit<BenchResult, 'targets'> = {
  startedAt: startedAt.toISOString(),
  seconds: (Date.now() - startedAt.getTime()) / 1000,
  machine: {
    cores: cpus().length,
    node: process.version,
    rabbitmq: facts.rabbitmq,
    mysql: facts.mysql,
    mysqlDurability: facts.mysqlDurability,
    loadavg: load,
  },
  options: { ...opts },
  ceiling,
  runner,
  e2e,
  notes,
};
const result: BenchResult = { ...partial, targets: evaluateTargets(partial) };
process.stdout.write(`${renderReport(result, hintsFor(result))}\n`);
process.stdout.write(`${toJsonLine(result)}\n`);
process.exit(exitCode);
