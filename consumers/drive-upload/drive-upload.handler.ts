import type { AttachmentAnalyzedV1, AttachmentConvertedV1, EmailReceivedV1 } from '../../contracts/index.js';
import type { BlobStore } from '../../infra/blobs/blob-store.js';
import type { ConsumerDefinition, HandlerContext } from '../../infra/broker/handler.js';
import { SUBSCRIPTIONS } from '../../infra/broker/subscriptions.js';
import { ByteBudget } from '../../infra/byte-budget.js';
import { perObject } from '../../infra/per-object.js';
import { BatchLoader } from '../../infra/db/batch-loader.js';
import type { Db } from '../../infra/db/database.js';
import { appendTimeline, type TimelineEntry } from '../../infra/db/repositories/timeline.repository.js';
import { batchState, type BatchWork } from '../../infra/db/batch-scope.js';
import { RowWriter, updateRows, type RowUpdate } from '../../infra/db/update-rows.js';
import { describeError, isRetryable, PostroomError, RetryableError } from '../../infra/errors.js';
import { completeEmailIfFinal } from './email-completion.js';
import { isDriveOutage } from '../../infra/drive/drive-errors.js';
import { FOLDER_GONE, type FileStore } from '../../infra/drive/file-store.js';
import { fileOnce, reservedIdOf, type FilingOutcome } from './file-once.js';
import { filePdf, recordPdfFiling } from './pdf-filing.js';
import { renderFolderTemplate } from './folder-template.js';

/** What the Drive consumer needs. */
export interface DriveUploadDeps {
  store: FileStore;
  blobs: BlobStore;
  /** `DRIVE_FOLDER_TEMPLATE`. */
  folderTemplate: string;
  /**
   * Messages taken at once (default 32): most of a message's time is database round trips, and the
   * reads, named locks and commits of messages handled together share statements. Connections holding
   * named locks are at most four per process (`MAX_LOCK_HOLDERS`); `budgetBytes` bounds the bytes
   * being filed at once.
   */
  prefetch?: number;
  /** Bytes of attachments filed at once (default 16 MiB; a larger attachment is filed alone). */
  budgetBytes?: number;
  /** Length of an hour of `DRIVE_RETRY_HOURS` in ms (default 3 600 000; tests of outages shorten it). */
  hourMs?: number;
}

/**
 * Hours a Drive failure that may heal (5xx, 429, network) is retried before the attachment is
 * recorded `failed`: a Drive outage of an hour is waited out with room to spare.
 */
export const DRIVE_RETRY_HOURS = 24;

/** What filing an attachment reads of it and its email. */
async function filingRows(db: Db, ids: string[]) {
  const rows = await db
    .selectFrom('attachments')
    .innerJoin('emails', 'emails.id', 'attachments.email_id')
    .select([
      'attachments.id',
      'attachments.drive_status',
      'attachments.drive_file_id',
      'attachments.filename',
      'attachments.size',
      'attachments.declared_type',
      'attachments.detected_type',
      'emails.from_address',
      'emails.subject',
      'emails.received_at',
    ])
    .where('attachments.id', 'in', ids)
    .execute();
  return new Map(rows.map((r) => [r.id, r]));
}

/** A filing to record: the attachment's new row, and what to tell once it is set. */
interface Filing {
  row: RowUpdate<'attachments'> & { id: string };
  announce: (toTimeline: (entry: TimelineEntry) => void) => void;
}

/**
 * The filings of a batch of commits, recorded together at its end (before the completion reads them):
 * one locking SELECT of those still pending and one UPDATE of them, instead of an UPDATE each. A row no
 * longer pending (a repeat recorded it first) is left as it is and announces nothing, as alone.
 */
const FILINGS: BatchWork<Filing[]> = {
  stage: 0,
  start: () => [],
  finish: async (trx, filings) => {
    const pending = await trx
      .selectFrom('attachments')
      .select('id')
      .where('id', 'in', [...new Set(filings.map((f) => f.row.id))])
      .where('drive_status', '=', 'pending')
      .orderBy('id')
      .forUpdate()
      .execute();
    const open = new Set(pending.map((r) => r.id));
    const rows: Filing['row'][] = [];
    const entries: TimelineEntry[] = [];
    for (const f of filings) {
      if (!open.delete(f.row.id)) continue; // the first filing of a row wins, as alone
      rows.push(f.row);
      f.announce((entry) => entries.push(entry));
    }
    await updateRows(trx, 'attachments', rows);
    await appendTimeline(trx, entries);
  },
};

/** `not-filed`: quarantined or rejected, never sent to the store. */
type Outcome = Omit<FilingOutcome, 'status'> & { status: FilingOutcome['status'] | 'not-filed' };

/**
 * Consumes `attachment.analyzed` and `attachment.converted`, and `email.received` for emails recorded
 * by an earlier release (see `SUBSCRIPTIONS`). Accepted attachments are filed in the
 * folder the template names, exactly once: the file id is reserved and stored before the upload, so a
 * retry after a crash uploads with the same id and finds the file already there; identical bytes
 * already in the folder are linked (`skipped`) instead of uploaded again. Other verdicts are final at once
 * (`not-filed`, with no `attachment.uploaded`: that event is about filed attachments). Whenever
 * every attachment of an email is final, `email.processed` is published (an email with no attachments
 * is closed when it is recorded, see `recordEmail`).
 */
export function createDriveUploadHandler(
  deps: DriveUploadDeps,
): ConsumerDefinition<'email.received' | 'attachment.analyzed' | 'attachment.converted'> {
  const budget = new ByteBudget(deps.budgetBytes ?? 16 * 1024 * 1024);
  /** The rows of the attachments of a burst of deliveries, read with one statement. */
  const rowsOf = perObject((db: Db) => new BatchLoader((ids: string[]) => filingRows(db, ids)));
  /** The file ids reserved by a burst of filings, stored with one commit before their uploads. */
  const reservationsOf = perObject((db: Db) => new RowWriter(db, 'attachments'));
  const fileAttachment = async (
    event: AttachmentAnalyzedV1,
    ctx: HandlerContext,
  ): Promise<Outcome | null> => {
    const d = event.data;
    const row = await rowsOf(ctx.db).get(d.attachmentId);
    if (!row)
      throw new RetryableError(
        'DRIVE.ATTACHMENT_UNKNOWN',
        `Attachment ${d.attachmentId} is not recorded (yet)`,
      );
    if (row.drive_status !== 'pending') return null; // already final: only the completion check is left
    const segments = renderFolderTemplate(deps.folderTemplate, {
      date: row.received_at,
      from: row.from_address,
      subject: row.subject,
    });
    const folder = segments.join('/');
    if (d.verdict !== 'accepted')
      return { status: 'not-filed', file: null, folder, detail: `${d.verdict}: not filed` };
    /** Files the bytes into the folder (made if missing); the reserved file id is kept across calls. */
    const fileInto = async (): Promise<Outcome> => {
      const folderId = await deps.store.ensureFolder(segments);
      return fileOnce({
        store: deps.store,
        db: ctx.db,
        folderId,
        folder,
        sha256: d.sha256,
        size: Number(row.size),
        open: () => deps.blobs.open(d.sha256),
        name: row.filename,
        mimeType: row.detected_type ?? (row.declared_type || 'application/octet-stream'),
        appProperties: { emailId: d.emailId, attachmentId: d.attachmentId },
        idKey: `attachment:${d.attachmentId}`,
        reservedFileId: row.drive_file_id,
        readReservedId: reservedIdOf(ctx.db, d.attachmentId, 'drive_file_id'),
        saveReservedId: (fileId) =>
          reservationsOf(ctx.db).set({ id: d.attachmentId, drive_file_id: fileId, drive_folder: folder }),
      });
    };
    try {
      // A folder deleted by hand in Drive is forgotten by the store on the first 404: make it again.
      return await budget.with(Number(row.size), () =>
        fileInto().catch((err: unknown) => {
          if (!(err instanceof PostroomError && err.code === FOLDER_GONE)) throw err;
          ctx.log.warn({ folder }, 'the target folder was gone from Drive; made it again');
          return fileInto();
        }),
      );
    } catch (err) {
      if (isRetryable(err) && !ctx.lastAttempt) throw err;
      ctx.log.warn({ err, attachmentId: d.attachmentId }, 'filing failed for good');
      return { status: 'failed', file: null, folder, detail: describeError(err) };
    }
  };

  return {
    name: 'drive-upload',
    events: SUBSCRIPTIONS['drive-upload'],
    prefetch: deps.prefetch ?? 32,
    // Drive being down or slow is waited out for hours; other retryable failures (an attachment not
    // recorded yet, a lock held by another consumer) keep the attempts of the tiers.
    retryForMs: DRIVE_RETRY_HOURS * (deps.hourMs ?? 3_600_000),
    waitsOut: isDriveOutage,
    // The commit functions below write only through their transaction and emit: safe to batch.
    batchCommits: true,
    async handle(event, ctx) {
      if (event.type === 'email.received') {
        // An attachmentless email is closed when recorded; one recorded by an earlier release is
        // still open, and closed here (see SUBSCRIPTIONS). With attachments, the handler of the last
        // one to become final closes the email.
        const e = event as EmailReceivedV1;
        if (e.data.attachmentCount > 0) return ctx.unchanged();
        await ctx.commit((trx, emit) => completeEmailIfFinal(trx, e.data.emailId, emit, ctx));
        return;
      }
      if (event.type === 'attachment.converted') {
        // The PDF of a converted document, filed next to the original; a failed conversion is final as it is.
        const c = event as AttachmentConvertedV1;
        const filed = await filePdf(c, ctx, deps);
        await ctx.commit(async (trx, emit) => {
          const entries = filed ? await recordPdfFiling(trx, c, filed) : [];
          await completeEmailIfFinal(trx, c.data.emailId, emit, ctx, entries);
        });
        return;
      }
      const e = event as AttachmentAnalyzedV1;
      const outcome = await fileAttachment(e, ctx);
      await ctx.commit(async (trx, emit) => {
        // Written with the completion's entry, in one INSERT.
        const entries: TimelineEntry[] = [];
        if (outcome) {
          const row = {
            id: e.data.attachmentId,
            drive_status: outcome.status,
            drive_file_id: outcome.file?.fileId ?? null,
            drive_link: outcome.file?.link ?? null,
            drive_folder: outcome.folder,
            uploaded_at: outcome.status === 'uploaded' ? new Date() : null,
          };
          /** Told once the row is set: a row no longer pending (a repeat raced us) tells nothing. */
          const announce = (toTimeline: (entry: TimelineEntry) => void) => {
            toTimeline({
              emailId: e.data.emailId,
              stage: 'drive',
              event: `attachment.${outcome.status}`,
              detail: outcome.detail,
            });
            if (outcome.status !== 'not-filed')
              emit(
                ctx.event('attachment.uploaded', {
                  attachmentId: e.data.attachmentId,
                  emailId: e.data.emailId,
                  status: outcome.status,
                  fileId: outcome.file?.fileId ?? null,
                  link: outcome.file?.link ?? null,
                  folder: outcome.folder,
                  backend: deps.store.backend,
                }),
              );
          };
          const batch = batchState(trx, FILINGS);
          if (batch) {
            batch.push({ row, announce });
          } else {
            const { id, ...values } = row;
            const updated = await trx
              .updateTable('attachments')
              .set(values)
              .where('id', '=', id)
              .where('drive_status', '=', 'pending')
              .executeTakeFirst();
            if (Number(updated.numUpdatedRows) > 0) announce((entry) => entries.push(entry));
          }
        }
        await completeEmailIfFinal(trx, e.data.emailId, emit, ctx, entries);
      });
      if (outcome)
        ctx.log.debug(
          { attachmentId: e.data.attachmentId, status: outcome.status, folder: outcome.folder },
          'attachment filed',
        );
    },
  };
}
