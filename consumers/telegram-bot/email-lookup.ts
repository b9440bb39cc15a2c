import type { Db } from '../../infra/db/database.js';
import { messageIdHash } from '../../infra/db/repositories/emails.repository.js';
import type { AttachmentView } from '../../infra/telegram/email-format.js';

/** One email as `/recent` lists it. */
export interface EmailSummary {
  id: string;
  messageId: string;
  source: string;
  subject: string;
  from: string;
  /** `processing` or `done`. */
  status: string;
  receivedAt: Date;
  attachmentCount: number;
}

/** One email as `/status` shows it. */
export interface EmailDetail extends EmailSummary {
  attachments: AttachmentView[];
  /** Notifications of the email by status (`sent: 2`). */
  notifications: Record<string, number>;
}

/** The columns a summary is made of. */
const SUMMARY_COLUMNS = [
  'id',
  'message_id',
  'source',
  'subject',
  'from_address',
  'status',
  'received_at',
  'attachment_count',
] as const;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Finds an email by its id (a UUID) or its Message-ID (with or without angle brackets). */
export async function findEmail(db: Db, ref: string): Promise<EmailDetail | null> {
  const query = db.selectFrom('emails').select(SUMMARY_COLUMNS);
  const row = UUID.test(ref)
    ? ((await query.where('id', '=', ref.toLowerCase()).executeTakeFirst()) ??
      (await query.where('message_id_hash', '=', messageIdHash(ref)).executeTakeFirst()))
    : await query.where('message_id_hash', '=', messageIdHash(ref)).executeTakeFirst();
  if (!row) return null;
  const attachments = await db
    .selectFrom('attachments')
    .select(['filename', 'verdict', 'reason', 'drive_status', 'drive_link', 'size'])
    .where('email_id', '=', row.id)
    .orderBy('seq')
    .execute();
  const notifications = await db
    .selectFrom('notifications')
    .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
    .where('email_id', '=', row.id)
    .groupBy('status')
    .execute();
  return {
    ...summaryOf(row),
    attachments: attachments.map((a) => ({
      filename: a.filename,
      verdict: a.verdict,
      reason: a.reason,
      driveStatus: a.drive_status,
      link: a.drive_link,
      size: Number(a.size),
    })),
    notifications: Object.fromEntries(notifications.map((n) => [n.status, Number(n.n)])),
  };
}

/** The last `limit` emails recorded, newest first. */
export async function recentEmails(db: Db, limit = 10): Promise<EmailSummary[]> {
  const rows = await db
    .selectFrom('emails')
    .select(SUMMARY_COLUMNS)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
  return rows.map(summaryOf);
}

function summaryOf(row: {
  id: string;
  message_id: string;
  source: string;
  subject: string;
  from_address: string;
  status: string;
  received_at: Date;
  attachment_count: number;
}): EmailSummary {
  return {
    id: row.id,
    messageId: row.message_id,
    source: row.source,
    subject: row.subject,
    from: row.from_address,
    status: row.status,
    receivedAt: row.received_at,
    attachmentCount: Number(row.attachment_count),
  };
}
