import { sql, type ExpressionBuilder, type Kysely, type Selectable } from 'kysely';
import type { AttachmentsTable } from '../tables/attachments.table.js';
import type { EmailsTable } from '../tables/emails.table.js';
import type { Database } from '../tables/index.js';
import type { CallsTable } from '../tables/outbound.table.js';
import type { NotificationsTable } from '../tables/telegram.table.js';
import type { TimelineTable } from '../tables/timeline.table.js';

type AnyDb = Kysely<Database>;

/**
 * The overall state of an email, in SQL: `done` when its row is done (every attachment final and
 * `email.processed` published) and no call or notification of it is still pending.
 */
function overallDone(eb: ExpressionBuilder<Database, 'emails'>) {
  const nonePending = (table: 'calls' | 'notifications') =>
    eb.not(
      eb.exists(
        eb
          .selectFrom(table)
          .select(sql<number>`1`.as('one'))
          .whereRef(`${table}.email_id`, '=', 'emails.id')
          .where(`${table}.status`, '=', 'pending'),
      ),
    );
  return eb.and([eb('emails.status', '=', 'done'), nonePending('calls'), nonePending('notifications')]);
}

/** An email row with its overall state. */
export type EmailRow = Selectable<EmailsTable> & { overall_status: 'processing' | 'done' };

/** Filters and keyset position of an email listing (newest first, by recording time then id). */
export interface EmailListFilter {
  /** `messageIdHash` of the wanted Message-ID. */
  messageIdHash?: string;
  /** Overall state. */
  status?: 'processing' | 'done';
  /** Sender address (lower case), or `@domain` for every sender of a domain. */
  from?: string;
  /** Only emails received at or after this instant. */
  since?: Date;
  /** Words in the subject or sender (case-insensitive substring; the console's search box). */
  text?: string;
  /** Rows to return. */
  limit: number;
  /** Only rows after this one in the order (created_at desc, id desc). */
  after?: { createdAt: Date; id: string };
}

/** Lists emails newest first with keyset paging: new mail lands before page one, never between pages. */
export async function listEmails(db: AnyDb, f: EmailListFilter): Promise<EmailRow[]> {
  let q = db
    .selectFrom('emails')
    .selectAll('emails')
    .select((eb) =>
      eb.case().when(overallDone(eb)).then('done').else('processing').end().as('overall_status'),
    );
  if (f.messageIdHash) q = q.where('emails.message_id_hash', '=', f.messageIdHash);
  if (f.from?.startsWith('@'))
    q = q.where('emails.from_address', 'like', `%@${f.from.slice(1).replace(/[\\%_]/g, '\\$&')}`);
  else if (f.from) q = q.where('emails.from_address', '=', f.from);
  if (f.since) q = q.where('emails.received_at', '>=', f.since);
  if (f.text) {
    const pattern = `%${f.text.replace(/[\\%_]/g, '\\$&')}%`;
    q = q.where((eb) =>
      eb.or([eb('emails.subject', 'like', pattern), eb('emails.from_address', 'like', pattern)]),
    );
  }
  if (f.status === 'done') q = q.where((eb) => overallDone(eb));
  if (f.status === 'processing') q = q.where((eb) => eb.not(overallDone(eb)));
  const after = f.after;
  if (after)
    q = q.where((eb) =>
      eb.or([
        eb('emails.created_at', '<', after.createdAt),
        eb.and([eb('emails.created_at', '=', after.createdAt), eb('emails.id', '<', after.id)]),
      ]),
    );
  const rows = await q
    .orderBy('emails.created_at', 'desc')
    .orderBy('emails.id', 'desc')
    .limit(f.limit)
    .execute();
  return rows as EmailRow[];
}

/** One call of an email, as the API shows it. */
export type CallRow = Pick<
  Selectable<CallsTable>,
  'hook' | 'event_type' | 'status' | 'attempts' | 'last_status_code' | 'last_error' | 'updated_at'
>;
/** One notification of an email, as the API shows it. */
export type NotificationRow = Pick<
  Selectable<NotificationsTable>,
  'chat_id' | 'status' | 'attempts' | 'updated_at'
>;

/** Everything the status API shows of one email. */
export interface EmailDetail {
  email: EmailRow;
  attachments: Selectable<AttachmentsTable>[];
  calls: CallRow[];
  notifications: NotificationRow[];
  timeline: Selectable<TimelineTable>[];
}

/** One email with its attachments, calls, notifications and timeline; undefined when unknown. */
export async function getEmailDetail(db: AnyDb, id: string): Promise<EmailDetail | undefined> {
  const s = db;
  const email = await s
    .selectFrom('emails')
    .selectAll('emails')
    .select((eb) =>
      eb.case().when(overallDone(eb)).then('done').else('processing').end().as('overall_status'),
    )
    .where('emails.id', '=', id)
    .executeTakeFirst();
  if (!email) return undefined;
  const [attachments, calls, notifications, timeline] = await Promise.all([
    s.selectFrom('attachments').selectAll().where('email_id', '=', id).orderBy('seq').execute(),
    s
      .selectFrom('calls')
      .select(['hook', 'event_type', 'status', 'attempts', 'last_status_code', 'last_error', 'updated_at'])
      .where('email_id', '=', id)
      .orderBy('created_at')
      .orderBy('hook')
      .execute(),
    s
      .selectFrom('notifications')
      .select(['chat_id', 'status', 'attempts', 'updated_at'])
      .where('email_id', '=', id)
      .orderBy('created_at')
      .orderBy('chat_id')
      .execute(),
    s.selectFrom('timeline').selectAll().where('email_id', '=', id).orderBy('at').orderBy('id').execute(),
  ]);
  return { email: email as EmailRow, attachments, calls, notifications, timeline };
}

/** One attachment row, or undefined. */
export async function getAttachment(
  db: AnyDb,
  id: string,
): Promise<Selectable<AttachmentsTable> | undefined> {
  return db.selectFrom('attachments').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Row counts by state and the oldest pending item of each stage. */
export interface StageCounts {
  /** Rows by state (`pending`, `accepted`, ...). */
  counts: Record<string, number>;
  /** When the oldest item still waiting for this stage became its work; null when none waits. */
  oldestPendingSince: Date | null;
}

/** What `/stats` reads from the database. */
export interface DatabaseStats {
  emails: StageCounts;
  stages: {
    analysis: StageCounts;
    drive: StageCounts;
    outbound: StageCounts;
    notify: StageCounts;
  };
  deadLetters: { parked: number; replayed: number };
  outbox: { pending: number; oldestPendingSince: Date | null };
}

const toDate = (v: unknown): Date | null =>
  v === null || v === undefined ? null : v instanceof Date ? v : new Date(String(v));
const byState = (rows: { state: string; n: unknown }[]): Record<string, number> =>
  Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));

/**
 * Counts per stage and state and the age of the oldest pending item of each. Analysis waits from
 * the moment an attachment is recorded, Drive from the moment it was analysed.
 */
export async function readStats(db: AnyDb): Promise<DatabaseStats> {
  const s = db;
  const count = sql<number>`COUNT(*)`.as('n');
  const groupCount = async (table: 'calls' | 'notifications') => {
    const [rows, oldest] = await Promise.all([
      s.selectFrom(table).select(['status as state', count]).groupBy('status').execute(),
      s
        .selectFrom(table)
        .select((eb) => eb.fn.min('created_at').as('at'))
        .where('status', '=', 'pending')
        .executeTakeFirst(),
    ]);
    return { counts: byState(rows), oldestPendingSince: toDate(oldest?.at) };
  };
  const [
    emails,
    emailOldest,
    verdicts,
    analysisOldest,
    drive,
    driveOldest,
    dead,
    outbox,
    calls,
    notifications,
  ] = await Promise.all([
    s
      .selectFrom('emails')
      .select((eb) => [
        eb.fn.countAll<number>().as('total'),
        eb.fn.sum<number>(eb.case().when(overallDone(eb)).then(1).else(0).end()).as('done'),
      ])
      .executeTakeFirst(),
    s
      .selectFrom('emails')
      .select((eb) => eb.fn.min('created_at').as('at'))
      .where((eb) => eb.not(overallDone(eb)))
      .executeTakeFirst(),
    s.selectFrom('attachments').select(['verdict as state', count]).groupBy('verdict').execute(),
    s
      .selectFrom('attachments')
      .select((eb) => eb.fn.min('created_at').as('at'))
      .where('verdict', '=', 'pending')
      .executeTakeFirst(),
    s.selectFrom('attachments').select(['drive_status as state', count]).groupBy('drive_status').execute(),
    s
      .selectFrom('attachments')
      .select((eb) => eb.fn.min('analyzed_at').as('at'))
      .where('drive_status', '=', 'pending')
      .where('verdict', '<>', 'pending')
      .executeTakeFirst(),
    s
      .selectFrom('dead_letters')
      .select((eb) => [
        eb.fn.countAll<number>().as('total'),
        eb.fn.count<number>('replayed_at').as('replayed'),
      ])
      .executeTakeFirst(),
    s
      .selectFrom('outbox')
      .select((eb) => [eb.fn.countAll<number>().as('pending'), eb.fn.min('created_at').as('at')])
      .where('sent_at', 'is', null)
      .executeTakeFirst(),
    groupCount('calls'),
    groupCount('notifications'),
  ]);
  const total = Number(emails?.total ?? 0);
  const done = Number(emails?.done ?? 0);
  const deadTotal = Number(dead?.total ?? 0);
  const replayed = Number(dead?.replayed ?? 0);
  return {
    emails: { counts: { processing: total - done, done }, oldestPendingSince: toDate(emailOldest?.at) },
    stages: {
      analysis: { counts: byState(verdicts), oldestPendingSince: toDate(analysisOldest?.at) },
      drive: { counts: byState(drive), oldestPendingSince: toDate(driveOldest?.at) },
      outbound: calls,
      notify: notifications,
    },
    deadLetters: { parked: deadTotal - replayed, replayed },
    outbox: { pending: Number(outbox?.pending ?? 0), oldestPendingSince: toDate(outbox?.at) },
  };
}

/** True when an email with this id exists. */
export async function emailExists(db: AnyDb, id: string): Promise<boolean> {
  return Boolean(await db.selectFrom('emails').select('id').where('id', '=', id).executeTakeFirst());
}
