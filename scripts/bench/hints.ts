import { cpuPerEmail, fmtMs, fmtRate, stackFloor, type BenchResult } from './report.js';

const fmtS = (s: number) => (Number.isFinite(s) ? `${s.toFixed(1)} s` : 'n/a');
const pct = (cores: number) => `${Math.round(cores * 100)}%`;

/** Plain-words hints drawn from the figures: which stage finished last, who used the CPU. */
export function hintsFor(r: BenchResult): string[] {
  const hints: string[] = [];
  for (const m of r.e2e) {
    // 30-40 µs on a quiet ext4 of the 2-core machine of December 2026, 250-900 µs after deletions.
    if (m.fsProbe && m.fsProbe.cpuUsPerFile > 100)
      hints.push(
        `${m.mode}: a new file in STORAGE_DIR's file system cost ${Math.round(m.fsProbe.cpuUsPerFile)} µs of CPU (30-40 µs when nothing was deleted lately), and local filing makes two per attachment: on ext4 without a journal each new file passes over every inode freed in the last minutes, so files deleted shortly before the run (an earlier run's, a test suite's) slow its filing. Run again after a few quiet minutes to measure Postroom rather than the file system.`,
      );
    const burst = m.phases.find((p) => p.kind === 'burst');
    if (!burst || !Number.isFinite(burst.lastAt.done)) continue;
    const { recorded, done } = burst.lastAt;
    if (recorded / done > 0.85)
      hints.push(
        `${m.mode}: the IMAP poller is the bottleneck of the burst: the last mail was recorded ${fmtS(recorded)} after the first append and done at ${fmtS(done)}; the poller ran at ${fmtRate(burst.imapPerSecond)} emails/s while the appender reached ${fmtRate(burst.appendPerSecond)}/s.`,
      );
    else
      hints.push(
        `${m.mode}: the consumers finish after the poller (last recorded at ${fmtS(recorded)}, last done at ${fmtS(done)}): look at the handler and relay timings.`,
      );
    for (const [name, s] of Object.entries(burst.processes ?? { 'postroom pipeline': burst.process })) {
      const cores = (s.cpuUserMs + s.cpuSystemMs) / s.wallMs;
      if (cores > 0.85)
        hints.push(
          `${m.mode}: ${name} used ${pct(cores)} of one core during the burst: it is CPU-bound on its single thread.`,
        );
    }
    if (burst.cpu.machineBusyCores / burst.cpu.machineCores > 0.85)
      hints.push(
        `${m.mode}: the machine was ${pct(burst.cpu.machineBusyCores / burst.cpu.machineCores)} busy during the burst: every process competes for the ${burst.cpu.machineCores} cores.`,
      );
    if (burst.done > 0) {
      // CPU-milliseconds per email, by process; what the machine's cores allow at that cost.
      const msPerEmail = (cores: number) => (cores * burst.cpu.wallSeconds * 1000) / burst.done;
      const entries = Object.entries(burst.cpu.cores);
      const ours = (name: string) => name.startsWith('postroom');
      const own = entries.filter(([name]) => ours(name)).reduce((a, [, c]) => a + msPerEmail(c), 0);
      const others = entries.filter(([name]) => !ours(name));
      const othersMs = others.reduce((a, [, c]) => a + msPerEmail(c), 0);
      const cap = (ms: number) => (burst.cpu.machineCores * 1000) / ms;
      hints.push(
        `${m.mode}: each email cost ${fmtMs(own)} of CPU in the pipeline and ${fmtMs(othersMs)} elsewhere (${others
          .map(([name, c]) => `${name} ${fmtMs(msPerEmail(c))}`)
          .join(
            ', ',
          )}): ${burst.cpu.machineCores} cores cap this machine at ${fmtRate(cap(own + othersMs))} emails/s, and at ${fmtRate(cap(othersMs))} emails/s even if the pipeline itself used no CPU at all.`,
      );
    }
    const lockMs = burst.done > 0 ? burst.mysql.rowLockTimeMs / burst.done : 0;
    if (lockMs > 5)
      hints.push(
        `${m.mode}: MySQL row lock waits came to ${fmtMs(lockMs)} per email during the burst (${burst.mysql.rowLockWaits} waits of ${fmtMs(burst.mysql.rowLockTimeMs / Math.max(1, burst.mysql.rowLockWaits))}): writers queue behind a transaction that stays open, such as an outbox relay batch holding its gap lock on \`outbox\` while it waits for publisher confirms.`,
      );
    const paced = m.phases.find((p) => p.kind === 'paced');
    const rateAsked = Number(r.options['BENCH_RATE']);
    if (paced && burst.emailsPerSecond < rateAsked)
      hints.push(
        `${m.mode}: the paced rate (${rateAsked}/s) is above what the pipeline sustains (${fmtRate(burst.emailsPerSecond)}/s in the burst): the paced latency measures a growing queue, not the pipeline at rest.`,
      );
    else if (paced && paced.stagesMs.ingest.p50 > 300)
      hints.push(
        `${m.mode}: at ${rateAsked}/s the median mail waited ${fmtMs(paced.stagesMs.ingest.p50)} from APPEND to its row although the poller keeps up: new mail is noticed late (imapflow enters IDLE only autoIdleDelay after the last command, 1 s in imap-options.ts).`,
      );
  }
  for (const m of r.e2e) {
    const backlog = m.phases.find((p) => p.kind === 'backlog');
    const floor = r.ceiling && backlog ? stackFloor(r.ceiling, backlog) : null;
    if (!floor || !backlog) continue;
    const spent = cpuPerEmail(backlog);
    const mysql = spent.byGroup.find(([g]) => g === 'mariadb')?.[1] ?? 0;
    hints.push(
      `${m.mode}: the stack alone, doing only what each email of the backlog needed, costs ${floor.total.toFixed(1)} ms of CPU per email on this machine (the ceilings above): fetching and parsing it ${floor.parse.toFixed(1)} ms (Dovecot, imapflow, mailparser), publishing its ${floor.events.toFixed(1)} events and taking its ${floor.deliveries.toFixed(1)} deliveries ${floor.broker.toFixed(1)} ms (RabbitMQ, amqplib). The backlog cost ${spent.total.toFixed(1)} ms per email in all, MySQL ${mysql.toFixed(1)} of it; ${floor.total < 5 ? `the 5 ms target leaves ${(5 - floor.total).toFixed(1)} ms per email for MySQL, the analysis, the filing and Postroom's own code` : "on this machine the stack alone is over the 5 ms target before MySQL, the analysis, the filing and Postroom's own code"}.`,
    );
  }
  if (r.runner && r.ceiling) {
    const fast = r.runner.runs.find((x) => x.prefetch === r.ceiling!.amqp.prefetch);
    if (fast && r.runner.slowdown > 2)
      hints.push(
        `runner: ${fmtRate(fast.perSecond)} msg/s against ${fmtRate(r.runner.rawConsumePerSecond)} raw, with ${pct(fast.cpuCores)} of one core busy (${Math.round((fast.cpuCores * 1e6) / fast.perSecond)} µs of CPU per message, of which JSON.parse and both validations take ${Math.round(1e6 / r.runner.validationPerSecond)} µs); inbox rows go out in group commits and acks in multiple-acks, so near 100% it is bound by its own CPU, below that by round trips.`,
      );
  }
  return hints;
}
