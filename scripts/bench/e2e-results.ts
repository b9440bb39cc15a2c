import { sql } from 'kysely';
import type { Db } from '../../infra/db/database.js';
import type { CpuUsage } from './cpu.js';
import type { AppendLog } from './mail.js';
import type { MysqlActivity } from './mysql-status.js';
import type { SqlKind } from './sql-trace.js';
import {
  counterTotal,
  histogramSeries,
  rate,
  summarize,
  type HistogramSummary,
  type MetricJson,
  type Summary,
} from './stats.js';
import type { WorkerSnapshot } from './worker-protocol.js';

/** One end-to-end phase: a backlog waiting before the pipeline looks, a burst at full speed, or a paced run. */
export interface PhaseResult {
  kind: 'backlog' | 'burst' | 'paced';
  /** Mails asked for, appended, and done. */
  sent: number;
  appended: number;
  appendFailed: number;
  appendError: string | null;
  done: number;
  timedOut: boolean;
  /** First APPEND sent to last APPEND confirmed (s), and the rate the appender reached. */
  appendSeconds: number;
  appendPerSecond: number;
  /** First APPEND sent to the last email done (s), and emails done per second over that time. */
  seconds: number;
  emailsPerSecond: number;
  /** APPEND confirmed to `emails.done_at` (ms). */
  latencyMs: Summary;
  /**
   * Where the latency goes, from the rows' own timestamps (ms): APPEND to the email row committed
   * (IMAP notice, queue behind earlier mails, download, parse, blob and record), row to the verdict
   * (outbox relay, broker, analysis queue and handler), verdict to done (relay, broker, drive queue
   * and upload, completion).
   */
  stagesMs: { ingest: Summary; analysis: Summary; filing: Summary };
  /** Seconds after the first APPEND at which the last email was recorded, analysed and done. */
  lastAt: { recorded: number; analyzed: number; done: number };
  verdicts: Record<string, number>;
  driveStatuses: Record<string, number>;
  /** The pipeline process over the phase (the first of them when the roles are split). */
  process: WorkerSnapshot;
  /** Every Postroom process over the phase, by name (one, or two when the roles are split). */
  processes: Record<string, WorkerSnapshot>;
  /** CPU use of every group of processes over the phase. */
  cpu: CpuUsage;
  /** What the MySQL server did over the phase (server-wide counters). */
  mysql: MysqlActivity;
  /** Statements the pipeline process sent over the phase, by kind, with round-trip times. */
  sql: SqlKind[];
  /** Handler time per queue, from `postroom_handler_duration_seconds`. */
  handlers: HistogramSummary[];
  /** Outcomes per queue other than `ok`: retries, duplicates, parked messages. */
  otherOutcomes: Record<string, number>;
  /** Outbox relay batches, from `postroom_outbox_batch_duration_seconds`. */
  outboxBatches: HistogramSummary | null;
  published: number;
  /** Emails the IMAP poller recorded, and the rate until the last one was recorded. */
  imapRecorded: number;
  imapPerSecond: number;
}

interface Row {
  message_id: string;
  created_at: Date;
  done_at: Date | null;
  analyzed_at: Date | null;
  verdict: string | null;
  drive_status: string | null;
}

/** Number of emails of the phase (Message-ID prefix) that are done. */
async function countDone(db: Db, prefix: string): Promise<number> {
  const r = await db
    .selectFrom('emails')
    .select(sql<number>`count(*)`.as('n'))
    .where('message_id', 'like', `${prefix}%`)
    .where('status', '=', 'done')
    .executeTakeFirst();
  return Number(r?.n ?? 0);
}

/** Polls until `want` emails of the phase are done or `deadline` passes; resolves with the count. */
export async function waitDone(db: Db, prefix: string, want: number, deadline: number): Promise<number> {
  for (;;) {
    const n = await countDone(db, prefix);
    if (n >= want || Date.now() > deadline) return n;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Reads the phase's rows and the pipeline's metrics into a `PhaseResult`. */
export async function collectPhase(args: {
  kind: PhaseResult['kind'];
  db: Db;
  prefix: string;
  sent: number;
  log: AppendLog;
  timedOut: boolean;
  processes: Record<string, WorkerSnapshot>;
  cpu: CpuUsage;
  mysql: MysqlActivity;
  sql: SqlKind[];
  metrics: MetricJson[];
}): Promise<PhaseResult> {
  const { log } = args;
  const rows = (await args.db
    .selectFrom('emails')
    .leftJoin('attachments', 'attachments.email_id', 'emails.id')
    .select([
      'emails.message_id',
      'emails.created_at',
      'emails.done_at',
      'attachments.analyzed_at',
      'attachments.verdict',
      'attachments.drive_status',
    ])
    .where('emails.message_id', 'like', `${args.prefix}%`)
    .execute()) as Row[];
  const t0 = log.firstStartedAt;
  const latency: number[] = [];
  const ingest: number[] = [];
  const analysis: number[] = [];
  const filing: number[] = [];
  const verdicts: Record<string, number> = {};
  const driveStatuses: Record<string, number> = {};
  let lastRecorded = 0;
  let lastAnalyzed = 0;
  let lastDone = 0;
  for (const r of rows) {
    const appended = log.appendedAt.get(r.message_id);
    const created = r.created_at.getTime();
    lastRecorded = Math.max(lastRecorded, created);
    if (appended !== undefined) ingest.push(created - appended);
    if (r.analyzed_at) {
      analysis.push(r.analyzed_at.getTime() - created);
      lastAnalyzed = Math.max(lastAnalyzed, r.analyzed_at.getTime());
    }
    if (r.done_at) {
      lastDone = Math.max(lastDone, r.done_at.getTime());
      if (appended !== undefined) latency.push(r.done_at.getTime() - appended);
      if (r.analyzed_at) filing.push(r.done_at.getTime() - r.analyzed_at.getTime());
    }
    verdicts[r.verdict ?? 'none'] = (verdicts[r.verdict ?? 'none'] ?? 0) + 1;
    driveStatuses[r.drive_status ?? 'none'] = (driveStatuses[r.drive_status ?? 'none'] ?? 0) + 1;
  }
  const done = rows.filter((r) => r.done_at).length;
  const since = (t: number) => (t > 0 ? (t - t0) / 1000 : Number.NaN);
  const otherOutcomes: Record<string, number> = {};
  for (const v of args.metrics.find((m) => m.name === 'postroom_messages_consumed_total')?.values ?? [])
    if (v.labels['outcome'] !== 'ok' && v.value > 0)
      otherOutcomes[`${v.labels['queue']}:${v.labels['outcome']}`] = v.value;
  const imapRecorded = counterTotal(args.metrics, 'postroom_imap_emails_total', { result: 'created' });
  return {
    kind: args.kind,
    sent: args.sent,
    appended: log.appendedAt.size,
    appendFailed: log.failed,
    appendError: log.firstError,
    done,
    timedOut: args.timedOut,
    appendSeconds: (log.lastDoneAt - t0) / 1000,
    appendPerSecond: rate(log.appendedAt.size, log.lastDoneAt - t0),
    seconds: since(lastDone),
    emailsPerSecond: rate(done, lastDone - t0),
    latencyMs: summarize(latency),
    stagesMs: { ingest: summarize(ingest), analysis: summarize(analysis), filing: summarize(filing) },
    lastAt: { recorded: since(lastRecorded), analyzed: since(lastAnalyzed), done: since(lastDone) },
    verdicts,
    driveStatuses,
    process: Object.values(args.processes)[0]!,
    processes: args.processes,
    cpu: args.cpu,
    mysql: args.mysql,
    sql: args.sql,
    handlers: histogramSeries(args.metrics, 'postroom_handler_duration_seconds', ['queue']),
    otherOutcomes,
    outboxBatches: histogramSeries(args.metrics, 'postroom_outbox_batch_duration_seconds')[0] ?? null,
    published: counterTotal(args.metrics, 'postroom_messages_published_total'),
    imapRecorded,
    imapPerSecond: rate(imapRecorded, lastRecorded - t0),
  };
}
