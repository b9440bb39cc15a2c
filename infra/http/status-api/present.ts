import type { Static } from '@sinclair/typebox';
import type { Selectable } from 'kysely';
import type { DeadLettersTable } from '../../db/tables/dead-letters.table.js';
import type { AttachmentsTable } from '../../db/tables/attachments.table.js';
import type { EmailDetail, EmailRow } from '../../db/repositories/status.repository.js';
import type { Attachment, DeadLetter, Email, EmailSummary } from './schemas.js';

/** Rows to API objects, field by field as SPEC.md names them. Dates become ISO-8601 UTC. */

const iso = (d: Date | string | null | undefined): string | null => (d ? new Date(d).toISOString() : null);
const isoOr = (d: Date | string): string => new Date(d).toISOString();

/** Where the API mounts, for links between its resources. */
export const API_BASE = '/api/v1';

function parseWarnings(text: string): string[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.map(String) : [];
  } catch {
    return [];
  }
}

/** One attachment row as the API shows it. */
export function presentAttachment(a: Selectable<AttachmentsTable>): Static<typeof Attachment> {
  return {
    id: a.id,
    emailId: a.email_id,
    filename: a.filename,
    originalFilename: a.original_filename,
    size: Number(a.size),
    sha256: a.sha256,
    declaredType: a.declared_type,
    detectedType: a.detected_type,
    disposition: a.disposition === 'inline' ? 'inline' : 'attachment',
    parentId: a.parent_id,
    verdict: a.verdict as Static<typeof Attachment>['verdict'],
    reason: a.reason,
    image:
      a.image_width !== null && a.image_height !== null
        ? {
            width: Number(a.image_width),
            height: Number(a.image_height),
            format: a.image_format ?? 'unknown',
          }
        : null,
    thumbnailUrl: a.thumbnail_sha256 ? `${API_BASE}/attachments/${a.id}/thumbnail` : null,
    drive: {
      status: a.drive_status as Static<typeof Attachment>['drive']['status'],
      fileId: a.drive_file_id,
      link: a.drive_link,
      folder: a.drive_folder,
    },
    analyzedAt: iso(a.analyzed_at),
    uploadedAt: iso(a.uploaded_at),
    conversion: presentConversion(a),
  };
}

type Conversion = NonNullable<Static<typeof Attachment>['conversion']>;

/** The `conversion` field: null when the attachment is not (to be) converted. */
function presentConversion(a: Selectable<AttachmentsTable>): Static<typeof Attachment>['conversion'] {
  if (a.conversion_status === null) return null;
  return {
    status: a.conversion_status as Conversion['status'],
    reason: a.conversion_reason,
    converter: a.conversion_converter,
    pdf:
      a.pdf_sha256 !== null
        ? {
            sha256: a.pdf_sha256,
            size: Number(a.pdf_size ?? 0),
            filename: a.pdf_filename ?? 'document.pdf',
            url: `${API_BASE}/attachments/${a.id}/converted`,
            drive: {
              status: (a.pdf_drive_status ?? 'pending') as NonNullable<Conversion['pdf']>['drive']['status'],
              fileId: a.pdf_drive_file_id,
              link: a.pdf_drive_link,
            },
          }
        : null,
    convertedAt: iso(a.converted_at),
  };
}

/** One email row as a list item. */
export function presentEmailSummary(e: EmailRow): Static<typeof EmailSummary> {
  return {
    id: e.id,
    messageId: e.message_id,
    source: e.source,
    subject: e.subject,
    from: e.from_address,
    receivedAt: isoOr(e.received_at),
    recordedAt: isoOr(e.created_at),
    status: e.overall_status === 'done' ? 'done' : 'processing',
    attachmentCount: Number(e.attachment_count),
  };
}

/** One email in full. */
export function presentEmail(d: EmailDetail): Email {
  return {
    ...presentEmailSummary(d.email),
    doneAt: iso(d.email.done_at),
    warnings: parseWarnings(d.email.warnings),
    attachments: d.attachments.map(presentAttachment),
    calls: d.calls.map((c) => ({
      hook: c.hook,
      eventType: c.event_type,
      status: c.status,
      attempts: Number(c.attempts),
      lastStatusCode: c.last_status_code === null ? null : Number(c.last_status_code),
      lastError: c.last_error,
      updatedAt: isoOr(c.updated_at),
    })),
    notifications: d.notifications.map((n) => ({
      chatId: String(n.chat_id),
      status: n.status,
      attempts: Number(n.attempts),
      updatedAt: isoOr(n.updated_at),
    })),
    timeline: d.timeline.map((t) => ({ at: isoOr(t.at), stage: t.stage, event: t.event, detail: t.detail })),
  };
}

/** One dead letter (without its body: it may be large). */
export function presentDeadLetter(r: DeadLettersTable): Static<typeof DeadLetter> {
  return {
    id: r.id,
    consumer: r.consumer,
    queue: r.queue,
    eventId: r.event_id,
    eventType: r.event_type,
    correlationId: r.correlation_id,
    reason: r.reason,
    attempts: Number(r.attempts),
    parkedAt: isoOr(r.parked_at),
    replayedAt: iso(r.replayed_at),
  };
}
