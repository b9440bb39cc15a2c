import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { FileStore } from '../drive/file-store.js';
import { describeError, PostroomError } from '../errors.js';
import type { Logger } from '../logger.js';

/** What a retention pass needs. */
export interface RetentionPassDeps {
  db: Db;
  log: Logger;
  /** `RETENTION_DAYS`: bytes of attachments recorded longer ago than this are dropped; 0 drops nothing. */
  retentionDays: number;
  /** The time the age is measured from (default: now). */
  now?: Date;
  /**
   * The store the attachments were filed in. When given, each filed copy is opened (its first byte
   * read) before the MySQL bytes are dropped, so a copy deleted by hand keeps its bytes in MySQL.
   * Without it the pass trusts the recorded filing.
   */
  files?: () => Promise<FileStore>;
  /** Blobs looked at per query (default 100). */
  batchSize?: number;
}

/** What one pass did. */
export interface RetentionPassResult {
  /** Blobs whose bytes were dropped from MySQL. */
  dropped: number;
  /** Their bytes. */
  bytesFreed: number;
}

interface Candidate {
  sha256: string;
  size: number;
  fileId: string;
}

/**
 * Drops from MySQL the bytes of attachments that are filed and older than `retentionDays`; they are
 * served from their filed copy afterwards (see `openAttachmentContent`). Bytes are content-addressed
 * and shared: a blob is dropped only when EVERY attachment holding those bytes is accepted, filed
 * (`uploaded` or `skipped`, with a file id) and old enough, and no attachment uses it as its thumbnail.
 * So the bytes of quarantined, rejected, pending or unfiled attachments (and thumbnails) always stay.
 *
 * Each blob goes in its own transaction: its `blobs` row is locked, the rule is checked again with
 * locking reads (an email holding the same bytes may have arrived since the candidate query), then the
 * row and its chunks are deleted together. So a pass killed halfway leaves every blob whole or gone,
 * and two passes at once drop each blob once (the second finds its row gone and skips it).
 */
export async function runRetentionPass(deps: RetentionPassDeps): Promise<RetentionPassResult> {
  const result: RetentionPassResult = { dropped: 0, bytesFreed: 0 };
  if (!(deps.retentionDays > 0)) return result;
  const log = deps.log.child({ module: 'retention' });
  const cutoff = new Date((deps.now ?? new Date()).getTime() - deps.retentionDays * 86_400_000);
  const batchSize = deps.batchSize ?? 100;
  const store = deps.files ? await deps.files() : null;
  let after = '';
  let kept = 0;
  for (;;) {
    const batch = await candidates(deps.db, cutoff, after, batchSize);
    for (const c of batch) {
      if (store && !(await filedCopyReadable(store, c, log))) {
        kept++;
        continue;
      }
      if (await dropBlob(deps.db, c.sha256, cutoff)) {
        result.dropped++;
        result.bytesFreed += c.size;
      }
    }
    if (batch.length < batchSize) break;
    after = batch[batch.length - 1]!.sha256;
  }
  log.info({ ...result, kept, retentionDays: deps.retentionDays, cutoff }, 'retention pass done');
  return result;
}

/** The condition "this attachment may lose its MySQL bytes", as SQL over an `attachments` alias. */
const droppable = (alias: string, cutoff: Date) =>
  sql`(${sql.ref(`${alias}.verdict`)} = 'accepted' and ${sql.ref(`${alias}.drive_status`)} in ('uploaded', 'skipped') and ${sql.ref(`${alias}.drive_file_id`)} is not null and ${sql.ref(`${alias}.created_at`)} < ${cutoff})`;

/** Blobs after `after` (by hash) whose every attachment is droppable; not empty ones (nothing to free). */
async function candidates(db: Db, cutoff: Date, after: string, limit: number): Promise<Candidate[]> {
  const rows = await db
    .selectFrom('blobs as b')
    .innerJoin('attachments as a', 'a.sha256', 'b.sha256')
    .select([
      'b.sha256',
      'b.size',
      sql<string>`max(case when ${droppable('a', cutoff)} then a.drive_file_id end)`.as('file_id'),
    ])
    .where('b.sha256', '>', after)
    .where('b.size', '>', 0)
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(selectFrom('attachments as t').select('t.id').whereRef('t.thumbnail_sha256', '=', 'b.sha256')),
      ),
    )
    .groupBy(['b.sha256', 'b.size'])
    .having(sql<number>`sum(case when ${droppable('a', cutoff)} then 0 else 1 end)`, '=', 0)
    .orderBy('b.sha256')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ sha256: r.sha256, size: Number(r.size), fileId: String(r.file_id) }));
}

/** True when the filed copy answers with its first byte; a gone copy is logged and its bytes kept. */
async function filedCopyReadable(store: FileStore, c: Candidate, log: Logger): Promise<boolean> {
  try {
    const stream = await store.openFile(c.fileId, { start: 0, end: 0 });
    stream.destroy();
    return true;
  } catch (err) {
    const gone = err instanceof PostroomError && err.code === 'FILE.GONE';
    log.warn(
      { sha256: c.sha256, fileId: c.fileId, err: gone ? undefined : err },
      gone
        ? 'filed copy is gone: its bytes stay in MySQL'
        : `filed copy could not be checked (${describeError(err)}): its bytes stay in MySQL for now`,
    );
    return false;
  }
}

/** Drops one blob in one transaction if the rule still holds under locks; false when it no longer does. */
async function dropBlob(db: Db, sha256: string, cutoff: Date): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .selectFrom('blobs')
      .select('sha256')
      .where('sha256', '=', sha256)
      .forUpdate()
      .executeTakeFirst();
    if (!row) return false; // another pass dropped it
    // Locking reads see the latest commits, not this transaction's snapshot.
    const blocking = await trx
      .selectFrom('attachments as a')
      .select('a.id')
      .where((eb) =>
        eb.or([
          eb.and([eb('a.sha256', '=', sha256), sql<boolean>`not ${droppable('a', cutoff)}`]),
          eb('a.thumbnail_sha256', '=', sha256),
        ]),
      )
      .limit(1)
      .modifyEnd(sql`lock in share mode`) // MariaDB 10.11 has no FOR SHARE
      .executeTakeFirst();
    if (blocking) return false;
    await trx.deleteFrom('blob_chunks').where('blob_key', '=', sha256).execute();
    await trx.deleteFrom('blobs').where('sha256', '=', sha256).execute();
    return true;
  });
}
