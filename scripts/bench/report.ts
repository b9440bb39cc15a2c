import {
  PARSE_WARMUP,
  type AmqpCeiling,
  type CpuPerUnit,
  type ImapCeiling,
  type MysqlCeiling,
} from './ceiling.js';
import type { PhaseResult } from './e2e-results.js';
import type { ModeResult } from './pipeline.js';
import type { RunnerRun } from './runner.js';
import type { HistogramSummary, Summary } from './stats.js';

/** Everything one run measured; printed as a table and as the final JSON line. */
export interface BenchResult {
  startedAt: string;
  seconds: number;
  machine: {
    cores: number;
    node: string;
    rabbitmq: string;
    mysql: string;
    mysqlDurability: string;
    loadavg: number[];
  };
  options: Record<string, unknown>;
  ceiling: { amqp: AmqpCeiling; mysql: MysqlCeiling; imap: ImapCeiling | null } | null;
  runner: {
    runs: RunnerRun[];
    rawConsumePerSecond: number;
    slowdown: number;
    validationPerSecond: number;
  } | null;
  e2e: ModeResult[];
  targets: Target[];
  notes: string[];
}

/** One target of issue 15 with the figure measured for it. */
export interface Target {
  name: string;
  measured: number | null;
  display: string;
  target: string;
  met: boolean | null;
}

const MB = 1e6;
const MIB = 1024 * 1024;

/** A rate with a sensible number of digits. */
export function fmtRate(v: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  return v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1);
}
/** Milliseconds, or seconds from 10 s up. */
export function fmtMs(v: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  return Math.abs(v) >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`;
}
const fmtMB = (b: number) => (Number.isFinite(b) ? `${(b / MB).toFixed(0)} MB` : 'n/a');
const fmtS = (s: number) => (Number.isFinite(s) ? `${s.toFixed(1)} s` : 'n/a');
const pct = (cores: number) => `${Math.round(cores * 100)}%`;
const lat = (s: Summary) => `p50 ${fmtMs(s.p50)}, p95 ${fmtMs(s.p95)}, p99 ${fmtMs(s.p99)}`;

/**
 * CPU milliseconds per email done in a phase, by process group (the Postroom processes, MariaDB,
 * RabbitMQ, Dovecot, the benchmark driver), leaving out "other processes" (whatever else ran on the
 * machine meanwhile); `total` adds them up.
 */
export function cpuPerEmail(p: PhaseResult): { byGroup: [string, number][]; total: number } {
  const byGroup = Object.entries(p.cpu.cores)
    .filter(([g]) => g !== 'other processes')
    .map(([g, cores]): [string, number] => [
      g,
      p.done > 0 ? (cores * p.cpu.wallSeconds * 1000) / p.done : NaN,
    ])
    .sort((a, b) => b[1] - a[1]);
  return { byGroup, total: byGroup.reduce((a, [, ms]) => a + ms, 0) };
}

/**
 * The CPU per email that the stack alone needs for what every email of a phase needed, from the
 * ceilings of the same run: fetching and parsing it (Dovecot, imapflow, mailparser), publishing its
 * events and taking its deliveries (RabbitMQ, amqplib), as many as the phase published and delivered
 * per email. MySQL is left out: what it must do per email depends on how writes are batched.
 */
export function stackFloor(
  c: NonNullable<BenchResult['ceiling']>,
  p: PhaseResult,
): { parse: number; broker: number; total: number; events: number; deliveries: number } | null {
  if (!c.imap || p.done === 0) return null;
  const events = p.published / p.done;
  const deliveries = p.handlers.reduce((a, h) => a + h.count, 0) / p.done;
  const parse = c.imap.fetchCpu.clientMs + c.imap.fetchCpu.serviceMs + c.imap.parseCpuMs;
  const broker =
    events * (c.amqp.publishCpu.clientMs + c.amqp.publishCpu.serviceMs) +
    deliveries * (c.amqp.consumeCpu.clientMs + c.amqp.consumeCpu.serviceMs);
  return { parse, broker, total: parse + broker, events, deliveries };
}

/** Highest RSS of any Postroom process over a phase (bytes). */
export function phasePeakRss(p: PhaseResult): number {
  return Math.max(...Object.values(p.processes ?? { one: p.process }).map((s) => s.peakWindow));
}

/** The targets of issue 15 against what was measured (a target not measured is `met: null`). */
export function evaluateTargets(r: Omit<BenchResult, 'targets'>): Target[] {
  const t: Target[] = [];
  for (const m of r.e2e) {
    const backlog = m.phases.find((p) => p.kind === 'backlog');
    const burst = m.phases.find((p) => p.kind === 'burst');
    const paced = m.phases.find((p) => p.kind === 'paced');
    if (backlog) {
      t.push({
        name: `backlog of ${backlog.sent} drained, ${m.mode} (emails/s)`,
        measured: backlog.emailsPerSecond,
        display: `${fmtRate(backlog.emailsPerSecond)} emails/s${backlog.timedOut ? ` (only ${backlog.done}/${backlog.sent} done)` : ''}`,
        target: '>= 400 emails/s (goal 500)',
        met: backlog.emailsPerSecond >= 400 && !backlog.timedOut,
      });
      const cpu = cpuPerEmail(backlog);
      t.push({
        name: `CPU per email over all processes, backlog, ${m.mode} (ms)`,
        measured: cpu.total,
        display: `${cpu.total.toFixed(1)} ms`,
        target: '<= 5 ms',
        met: cpu.total <= 5,
      });
      const peak = phasePeakRss(backlog);
      t.push({
        name: `peak RSS while draining the backlog, ${m.mode} (bytes)`,
        measured: peak,
        display: `${fmtMB(peak)}${Object.keys(backlog.processes).length > 1 ? ' (largest process)' : ''}`,
        target: '< 250 MB',
        met: peak < 250 * MB,
      });
    }
    if (burst)
      t.push({
        name: `live burst, ${m.mode} (emails/s)`,
        measured: burst.emailsPerSecond,
        display: `${fmtRate(burst.emailsPerSecond)} emails/s${burst.timedOut ? ` (only ${burst.done}/${burst.sent} done)` : ''}`,
        target: 'report',
        met: null,
      });
    if (paced)
      t.push({
        name: `p99 append-to-done at ${r.options['BENCH_RATE']}/s, ${m.mode} (ms)`,
        measured: paced.latencyMs.p99,
        display: fmtMs(paced.latencyMs.p99),
        target: '< 1 s',
        met: paced.latencyMs.p99 < 1000 && !paced.timedOut,
      });
    if (m.memory)
      t.push({
        name: `peak RSS growth for a ${(m.memory.attachmentBytes / MIB).toFixed(0)} MiB attachment, ${m.mode} (bytes)`,
        measured: m.memory.growth,
        display: `+${fmtMB(m.memory.growth)} (${m.memory.growthRatio.toFixed(2)}x)${m.memory.done ? '' : ' (not done)'}`,
        target: `<= 3x (${fmtMB(3 * m.memory.attachmentBytes)})`,
        met: m.memory.growth <= 3 * m.memory.attachmentBytes && m.memory.done,
      });
  }
  if (r.runner)
    t.push({
      name: 'consumer runner slowdown vs raw consume (x)',
      measured: r.runner.slowdown,
      display: `${r.runner.slowdown.toFixed(2)}x slower`,
      target: '<= 1.5x',
      met: r.runner.slowdown <= 1.5,
    });
  return t;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function handlerRows(handlers: readonly HistogramSummary[]): string[][] {
  return handlers.map((h) => [
    `    handler ${h.labels['queue'] ?? ''}`,
    `${h.count} msgs, mean ${fmtMs(h.mean * 1000)}, ~p50 ${fmtMs(h.p50 * 1000)}, ~p95 ${fmtMs(h.p95 * 1000)}, ~p99 ${fmtMs(h.p99 * 1000)}`,
  ]);
}

/** Where one phase's time went: stage latencies, handlers, relay, CPU per process group. */
function phaseDetail(mode: string, p: PhaseResult): string[][] {
  const cpu = Object.entries(p.cpu.cores)
    .sort((a, b) => b[1] - a[1])
    .map(([g, c]) => `${g} ${pct(c)}`)
    .join(', ');
  const rows: string[][] = [
    [
      `  ${mode} ${p.kind}`,
      `${p.done}/${p.sent} done; appends ${fmtRate(p.appendPerSecond)}/s over ${fmtS(p.appendSeconds)}`,
    ],
    ['    append -> recorded (IMAP)', lat(p.stagesMs.ingest)],
    ['    recorded -> analysed', lat(p.stagesMs.analysis)],
    ['    analysed -> done (Drive)', lat(p.stagesMs.filing)],
    [
      '    last recorded / analysed / done',
      `${fmtS(p.lastAt.recorded)} / ${fmtS(p.lastAt.analyzed)} / ${fmtS(p.lastAt.done)} after the first append`,
    ],
    ['    IMAP poller', `${p.imapRecorded} recorded, ${fmtRate(p.imapPerSecond)} emails/s`],
    ...handlerRows(p.handlers),
    [
      '    outbox relay',
      p.outboxBatches
        ? `${p.outboxBatches.count} batches, ${p.published} published, mean ${fmtMs(p.outboxBatches.mean * 1000)}, ~p95 ${fmtMs(p.outboxBatches.p95 * 1000)}`
        : 'no batches',
    ],
    ...Object.entries(p.processes ?? { 'postroom pipeline': p.process }).map(([name, s]) => [
      `    ${name}`,
      `CPU ${pct((s.cpuUserMs + s.cpuSystemMs) / s.wallMs)} of one core, peak RSS ${fmtMB(s.peakWindow)}, event-loop delay mean ${s.loopDelay.mean.toFixed(1)} ms, p99 ${s.loopDelay.p99.toFixed(0)} ms, max ${s.loopDelay.max.toFixed(0)} ms`,
    ]),
    [
      '    machine CPU',
      `${pct(p.cpu.machineBusyCores / p.cpu.machineCores)} of ${p.cpu.machineCores} cores busy, iowait ${pct(p.cpu.iowaitCores / p.cpu.machineCores)}; by process (100% = one core): ${cpu}`,
    ],
  ];
  const q = p.mysql;
  const perEmail = (x: number) => (p.done > 0 ? x / p.done : Number.NaN);
  rows.push([
    '    per email',
    `${perEmail(q.queries).toFixed(0)} SQL statements, ${perEmail(q.commits).toFixed(1)} commits (server-wide counts)`,
  ]);
  const perProcess = cpuPerEmail(p);
  rows.push([
    '    CPU per email',
    `${perProcess.total.toFixed(1)} ms over all processes (${perProcess.byGroup.map(([g, ms]) => `${g} ${ms.toFixed(2)}`).join(', ')}): ${p.cpu.machineCores} cores allow ${fmtRate((p.cpu.machineCores * 1000) / perProcess.total)} emails/s at that cost`,
  ]);
  rows.push([
    '    MySQL (server-wide)',
    `${q.commits} commits, ${q.dataFsyncs} InnoDB fsyncs, ${q.queries} statements; ${q.rowLockWaits} row lock waits totalling ${fmtMs(q.rowLockTimeMs)}${q.rowLockWaits > 0 ? ` (${fmtMs(q.rowLockTimeMs / q.rowLockWaits)} each)` : ''}`,
  ]);
  const statements = p.sql.reduce((a, k) => a + k.count, 0);
  const top = p.sql
    .slice(0, 14)
    .map(
      (k) =>
        `${k.kind} ${perEmail(k.count).toFixed(1)} (${(k.totalMs / Math.max(1, k.count)).toFixed(1)} ms)`,
    )
    .join(', ');
  rows.push([
    '    SQL from the pipeline',
    `${perEmail(statements).toFixed(1)} statements per email, mean round trip ${fmtMs(p.sql.reduce((a, k) => a + k.totalMs, 0) / Math.max(1, statements))}; per email by kind (mean round trip): ${top}`,
  ]);
  const other = Object.entries(p.otherOutcomes);
  if (other.length > 0) rows.push(['    not ok', other.map(([k, v]) => `${k} ${v}`).join(', ')]);
  return rows;
}

/** `0.05 ms RabbitMQ, 0.02 ms amqplib`: CPU per unit in the service and in its client library. */
function cpuNote(c: CpuPerUnit, service: string, client: string): string {
  return `${c.serviceMs.toFixed(2)} ms ${service}, ${c.clientMs.toFixed(2)} ms ${client}`;
}

/** `10 KiB`, `25.0 MiB`. */
function fmtBytes(b: number): string {
  return b >= MIB ? `${(b / MIB).toFixed(1)} MiB` : `${Math.round(b / 1024)} KiB`;
}

/** The human part of the report. */
export function renderReport(r: BenchResult, hints: readonly string[]): string {
  const out: string[] = [];
  out.push(
    `Postroom benchmark: ${r.machine.cores} cores, Node ${r.machine.node}, ${r.machine.rabbitmq}, ${r.machine.mysql} (${r.machine.mysqlDurability}); load before the run ${r.machine.loadavg.map((l) => l.toFixed(2)).join(' ')}`,
  );
  const rows: string[][] = [['measure', 'measured', 'target', '']];
  if (r.ceiling) {
    const a = r.ceiling.amqp;
    const m = r.ceiling.mysql;
    rows.push([
      `AMQP publish, confirms (${a.bytes} B, ${a.window} in flight, quorum)`,
      `${fmtRate(a.publishPerSecond)} msg/s`,
      'ceiling',
      `one publish alone waits p50 ${a.confirmMsP50.toFixed(1)} ms, p99 ${a.confirmMsP99.toFixed(1)} ms for its confirm; CPU per message ${cpuNote(a.publishCpu, 'RabbitMQ', 'amqplib')}`,
    ]);
    rows.push([
      `AMQP consume, acks (prefetch ${a.prefetch})`,
      `${fmtRate(a.consumePerSecond)} msg/s`,
      'ceiling',
      `CPU per message ${cpuNote(a.consumeCpu, 'RabbitMQ', 'amqplib')}`,
    ]);
    rows.push([
      `MySQL single-row commits (${m.connections} connections)`,
      `${fmtRate(m.commitsPerSecond)} commits/s`,
      'ceiling',
      `one commit p50 ${m.commitMsP50.toFixed(1)} ms, p99 ${m.commitMsP99.toFixed(1)} ms`,
    ]);
    const i = r.ceiling.imap;
    if (i) {
      rows.push([
        `IMAP FETCH of whole mails (imapflow, one connection, ${i.mails} mails)`,
        `${fmtRate(i.fetchPerSecond)} mails/s`,
        'ceiling',
        `CPU per mail ${cpuNote(i.fetchCpu, 'Dovecot', 'imapflow')}`,
      ]);
      rows.push([
        `MIME parse of those mails (mailparser, SHA-256 of the ${fmtBytes(i.attachmentBytes)} attachment)`,
        `${fmtRate(i.parsePerSecond)} mails/s`,
        'ceiling',
        `CPU per mail ${i.parseCpuMs.toFixed(2)} ms (one core, after a warm-up of ${fmtRate(PARSE_WARMUP)} parses)`,
      ]);
    }
  }
  if (r.runner) {
    for (const run of r.runner.runs)
      rows.push([
        `consumer runner, no-op handler (prefetch ${run.prefetch}, ${run.bytes} B)`,
        `${fmtRate(run.perSecond)} msg/s`,
        '',
        `runner time ${run.handler ? `mean ${fmtMs(run.handler.mean * 1000)}, ~p99 ${fmtMs(run.handler.p99 * 1000)}` : 'n/a'}; CPU ${pct(run.cpuCores)} of one core${run.notOk > 0 ? `; ${run.notOk} not ok` : ''}`,
      ]);
    rows.push([
      'runner: JSON.parse + ajv alone (CPU)',
      `${fmtRate(r.runner.validationPerSecond)} msg/s`,
      '',
      '',
    ]);
  }
  for (const m of r.e2e) {
    if (m.fsProbe)
      rows.push([
        `new files in STORAGE_DIR's file system, ${m.mode}`,
        `${fmtRate(m.fsProbe.perSecond)} files/s`,
        '',
        `${Math.round(m.fsProbe.cpuUsPerFile)} µs of CPU each (empty; filing makes two files per attachment)`,
      ]);
    for (const p of m.phases)
      rows.push([
        `end to end, ${m.mode}, ${p.kind} of ${p.sent}`,
        `${fmtRate(p.emailsPerSecond)} emails/s`,
        '',
        `append-to-done ${lat(p.latencyMs)}${p.timedOut ? `; TIMED OUT with ${p.done}/${p.appended} done` : ''}`,
      ]);
    const backlog = m.phases.find((p) => p.kind === 'backlog');
    const floor = r.ceiling && backlog ? stackFloor(r.ceiling, backlog) : null;
    if (floor && backlog)
      rows.push([
        `CPU per email the stack alone needs, ${m.mode} backlog`,
        `${floor.total.toFixed(2)} ms`,
        'floor',
        `fetch + parse ${floor.parse.toFixed(2)} ms, ${floor.events.toFixed(1)} events published and ${floor.deliveries.toFixed(1)} delivered ${floor.broker.toFixed(2)} ms; the pipeline used ${cpuPerEmail(backlog).total.toFixed(1)} ms in all`,
      ]);
  }
  rows.push(['', '', '', '']);
  rows.push(['target', 'measured', 'target', 'verdict']);
  for (const t of r.targets)
    rows.push([
      t.name.replace(/ \([^)]*\)$/, ''),
      t.display,
      t.target,
      t.met === null ? 'n/a' : t.met ? 'met' : 'MISSED',
    ]);
  out.push(table(rows));

  if (r.e2e.length > 0) {
    out.push(
      '',
      'Where the time goes (per-stage timings from the rows, handler histograms from the pipeline metrics; ~ = estimated from buckets)',
    );
    const detail: string[][] = [];
    for (const m of r.e2e) {
      for (const p of m.phases) detail.push(...phaseDetail(m.mode, p));
      if (m.memory)
        detail.push([
          `  ${m.mode} memory run`,
          `${(m.memory.attachmentBytes / MIB).toFixed(1)} MiB attachment: ${m.memory.verdict ?? '?'} / ${m.memory.driveStatus ?? '?'} in ${fmtS(m.memory.seconds)}; RSS ${fmtMB(m.memory.baselineRss)} -> ${fmtMB(m.memory.peakRss)}${m.memory.peakByStage ? `; highest growth while ingesting +${fmtMB(m.memory.peakByStage.ingest)}, analysing +${fmtMB(m.memory.peakByStage.analysis)}, filing +${fmtMB(m.memory.peakByStage.filing)}` : ''}${m.memory.verdict === 'accepted' ? '' : ` (${m.memory.reason ?? ''})`}`,
        ]);
      detail.push([
        `  ${m.mode} process`,
        `peak RSS ${fmtMB(m.peakRss)} (kernel VmHWM ${m.kernelPeakRss === null ? 'n/a' : fmtMB(m.kernelPeakRss)}); files stored ${m.filesStored}${m.fakeDrive ? `, Drive folders ${m.fakeDrive.folders}, checksum mismatches ${m.fakeDrive.mismatches}` : ''}; log ${m.logFile} (${m.logWarnings} warnings, ${m.logErrors} errors)`,
      ]);
    }
    out.push(table(detail));
  }
  if (hints.length > 0) out.push('', 'Reading the figures:', ...hints.map((h) => `  - ${h}`));
  if (r.notes.length > 0) out.push('', 'Notes:', ...r.notes.map((n) => `  - ${n}`));
  return out.join('\n');
}

/** JSON with NaN and Infinity as null. */
export function toJsonLine(r: BenchResult): string {
  return JSON.stringify(r, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v));
}
