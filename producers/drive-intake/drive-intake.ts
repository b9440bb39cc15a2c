import { createHash, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { BlobStore } from '../../infra/blobs/blob-store.js';
import type { Db } from '../../infra/db/database.js';
import { LOCK_BUSY, withNamedLock } from '../../infra/db/named-lock.js';
import {
  findEmailIdByMessageId,
  recordEmail,
  type RecordedAttachment,
} from '../../infra/db/repositories/emails.repository.js';
import { describeError, isRetryable, PostroomError } from '../../infra/errors.js';
import type { Logger } from '../../infra/logger.js';
import { safeFilename } from '../../infra/safe-filename.js';
import type { DriveIntakeApi, IntakeFile } from './drive-intake-api.js';

/** Google Docs Editors types the intake exports as PDF. */
const EXPORTABLE = new Set([
  'application/vnd.google-apps.document',
  'application/vnd.google-apps.spreadsheet',
  'application/vnd.google-apps.presentation',
  'application/vnd.google-apps.drawing',
]);
const GOOGLE_APPS = 'application/vnd.google-apps.';
const FOLDER_MIME = 'application/vnd.google-apps.folder';

/** What the intake needs. */
export interface DriveIntakeDeps {
  db: Db;
  blobs: BlobStore;
  api: Pick<DriveIntakeApi, 'startPageToken' | 'changes' | 'listFolder' | 'download' | 'export' | 'trash'>;
  /** `DRIVE_INTAKE_FOLDER_ID`. */
  folderId: string;
  /** `ATTACHMENT_MAX_BYTES`: larger files are recorded and rejected, never stored. */
  maxBytes: number;
  log: Logger;
}

/** What happened to one file. */
export type IntakeOutcome =
  | 'recorded'
  | 'too_large'
  | 'exported'
  | 'not_exportable'
  | 'changed_while_read'
  | 'already_recorded'
  /** Refused for good by Drive (deleted meanwhile, no permission): logged, skipped. */
  | 'failed';

/** What one poll did. */
export interface PollResult {
  /** False when another process was polling the same folder (nothing done here). */
  polled: boolean;
  /** Each file looked at, with its outcome. */
  files: { fileId: string; name: string; outcome: IntakeOutcome }[];
}

/** The Message-ID a state of an intake file is recorded under: one email per (file, version). */
export function intakeMessageId(file: Pick<IntakeFile, 'id' | 'version'>): string {
  return `drive-${file.id}-v${file.version}@drive.postroom`;
}

/**
 * Takes in the files put in the Drive intake folder, polled (`pollOnce`):
 *
 * - New files are found through the changes API from a page token kept in MySQL
 *   (`drive_intake_state`); the token advances only after every file of a page was handled, so a
 *   restart reads a page again rather than missing one. The first poll takes the files already in the
 *   folder, then follows changes from a token taken before that listing.
 * - Each state of a file (id and Drive's `version`) becomes one email with `source: drive` and one
 *   attachment: its Message-ID names both, so a file read again (a page re-read, two pollers) is
 *   recorded once. The email is recorded like a mailed one (blob first, then one transaction with its
 *   outbox events), analysed and filed by the template, then the intake copy is trashed (recoverable in
 *   Drive's trash for 30 days; the filed copy is the one that stays).
 * - Bytes are streamed into the blob store and checked against Drive's size and SHA-256 of the listed
 *   state: a file that changes while read is left alone and taken at its next version (its change comes
 *   next). A Google Docs file is exported as PDF (`<name>.pdf`); one that cannot be exported (a form,
 *   over Drive's 10 MB export limit) is recorded with a warning and no attachment, and left in the
 *   folder. A file over `maxBytes` is recorded not stored, so analysis rejects it and it is never filed.
 * - One process polls a folder at a time (a MySQL named lock): the `drive` role runs on several pods.
 */
export function createDriveIntake(deps: DriveIntakeDeps) {
  const { db, api, folderId, log } = deps;
  const lockName = `postroom:drive-intake:${createHash('sha256').update(folderId).digest('hex').slice(0, 32)}`;

  const loadToken = async () =>
    (
      await db
        .selectFrom('drive_intake_state')
        .select('page_token')
        .where('folder_id', '=', folderId)
        .executeTakeFirst()
    )?.page_token ?? null;
  const saveToken = async (token: string) => {
    const now = new Date();
    await db
      .insertInto('drive_intake_state')
      .values({ folder_id: folderId, page_token: token, updated_at: now })
      .onDuplicateKeyUpdate({ page_token: token, updated_at: now })
      .execute();
  };

  /** SHA-256 and size of a stream read through (for a file too large to keep). */
  const digest = async (stream: Readable) => {
    const h = createHash('sha256');
    let size = 0;
    for await (const c of stream as AsyncIterable<Buffer>) {
      h.update(c);
      size += c.length;
    }
    return { sha256: h.digest('hex'), size };
  };

  /** Trashes the intake copy; a refusal for good (no permission) is logged, not retried forever. */
  const trash = async (file: IntakeFile) => {
    try {
      await api.trash(file.id);
    } catch (err) {
      if (isRetryable(err)) throw err;
      log.warn({ err, fileId: file.id }, 'the intake copy could not be trashed; it stays in the folder');
    }
  };

  const record = async (
    file: IntakeFile,
    attachment: Omit<RecordedAttachment, 'id' | 'parentId' | 'disposition' | 'contentId'> | null,
    warnings: string[],
  ) =>
    recordEmail(db, {
      source: 'drive',
      fileId: file.id,
      receivedAt: new Date(),
      parsed: {
        messageId: intakeMessageId(file),
        subject: file.name,
        from: (file.modifiedBy ?? 'drive-intake').toLowerCase(),
        size: attachment?.size ?? 0,
        warnings,
        attachments: attachment
          ? [{ ...attachment, id: randomUUID(), parentId: null, disposition: 'attachment', contentId: null }]
          : [],
      },
    });

  const takeIn = async (file: IntakeFile): Promise<IntakeOutcome> => {
    if (await findEmailIdByMessageId(db, intakeMessageId(file))) {
      await trash(file);
      return 'already_recorded';
    }
    const base = {
      filename: safeFilename(file.name, 'drive-file'),
      originalFilename: file.name,
      declaredType: file.mimeType,
    };
    if (file.mimeType.startsWith(GOOGLE_APPS)) {
      const why = EXPORTABLE.has(file.mimeType)
        ? await api.export(file.id, 'application/pdf').then(
            async (stream) => {
              const info = await deps.blobs.put(stream, { maxBytes: deps.maxBytes }).catch((err: unknown) => {
                if (err instanceof PostroomError && err.code === 'BLOB.TOO_LARGE') return null;
                throw err;
              });
              if (!info) return `its PDF is over ATTACHMENT_MAX_BYTES (${deps.maxBytes} bytes)`;
              await record(
                file,
                {
                  ...base,
                  filename: safeFilename(`${file.name}.pdf`, 'drive-file.pdf'),
                  declaredType: 'application/pdf',
                  size: info.size,
                  sha256: info.sha256,
                  stored: true,
                },
                [`Google Docs file exported as PDF`],
              );
              return null;
            },
            (err: unknown) => {
              if (isRetryable(err)) throw err;
              return `could not be exported as PDF: ${describeError(err)}`;
            },
          )
        : `a ${file.mimeType.slice(GOOGLE_APPS.length)} cannot be exported as a file`;
      if (why === null) {
        await trash(file);
        return 'exported';
      }
      await record(file, null, [`Drive intake: ${file.name}: ${why}; left in the intake folder`]);
      return 'not_exportable';
    }
    if (file.size !== null && file.size > deps.maxBytes) {
      const { sha256, size } = file.sha256Checksum
        ? { sha256: file.sha256Checksum, size: file.size }
        : await digest(await api.download(file.id));
      await record(file, { ...base, size, sha256, stored: false }, []);
      await trash(file);
      return 'too_large';
    }
    let info;
    try {
      info = await deps.blobs.put(await api.download(file.id), { maxBytes: deps.maxBytes });
    } catch (err) {
      if (err instanceof PostroomError && err.code === 'BLOB.TOO_LARGE') return 'changed_while_read';
      throw err;
    }
    const changed =
      (file.size !== null && info.size !== file.size) ||
      (file.sha256Checksum !== null && info.sha256 !== file.sha256Checksum);
    // The blob just written stays unreferenced unless the next version has the same bytes: harmless.
    if (changed) return 'changed_while_read';
    await record(file, { ...base, size: info.size, sha256: info.sha256, stored: true }, []);
    await trash(file);
    return 'recorded';
  };

  const handle = async (files: IntakeFile[], result: PollResult, seen: Set<string>) => {
    for (const file of files) {
      const key = `${file.id}:${file.version}`;
      if (file.trashed || file.mimeType === FOLDER_MIME || !file.parents.includes(folderId) || seen.has(key))
        continue;
      seen.add(key);
      let outcome: IntakeOutcome;
      try {
        outcome = await takeIn(file);
      } catch (err) {
        // Retryable: the page is read again at the next poll. Anything else would block it forever.
        if (isRetryable(err)) throw err;
        log.error({ err, fileId: file.id }, 'drive intake: file refused for good; skipped');
        outcome = 'failed';
      }
      result.files.push({ fileId: file.id, name: file.name, outcome });
      const level = outcome === 'recorded' || outcome === 'exported' ? 'info' : 'warn';
      log[level](
        { fileId: file.id, version: file.version, outcome },
        `drive intake: ${outcome.replace(/_/g, ' ')}`,
      );
    }
  };

  /** One look at the folder's changes; resolves `polled: false` when another process is at it. */
  async function pollOnce(): Promise<PollResult> {
    const result: PollResult = { polled: true, files: [] };
    const seen = new Set<string>();
    const done = await withNamedLock(db, lockName, 0, async () => {
      let token = await loadToken();
      if (token === null) {
        // Taken before the listing: a file added meanwhile shows up in both, and is recorded once.
        const start = await api.startPageToken();
        await handle(await api.listFolder(folderId), result, seen);
        await saveToken(start);
        token = start;
      }
      for (;;) {
        const page = await api.changes(token);
        await handle(page.files, result, seen);
        const next = page.nextPageToken ?? page.newStartPageToken;
        if (next) await saveToken(next);
        if (!page.nextPageToken || !next) return;
        token = next;
      }
    });
    return done === LOCK_BUSY ? { polled: false, files: [] } : result;
  }

  return { pollOnce };
}

/** A running intake. */
export type DriveIntake = ReturnType<typeof createDriveIntake>;
