import { createHash } from 'node:crypto';
import { pipeline, Readable, Transform } from 'node:stream';
import type { BlobStore } from '../blobs/blob-store.js';
import { PermanentError } from '../errors.js';
import type { ByteRange, FileStore } from './file-store.js';

/** What is needed of an attachment row to find its bytes. */
export interface AttachmentBytesRow {
  id: string;
  sha256: string;
  /** Bytes. */
  size: number;
  /** 1 when the bytes were stored at intake (0: over ATTACHMENT_MAX_BYTES, never kept). */
  stored: number;
  /** `uploaded` or `skipped` when a filed copy exists under `drive_file_id`. */
  drive_status: string;
  drive_file_id: string | null;
}

/** Where attachment bytes are read from. */
export interface AttachmentContentDeps {
  blobs: BlobStore;
  /** The file store filed copies are read back from (made on first use: the API may never need it). */
  files: () => Promise<FileStore>;
}

/** Where the bytes came from: MySQL, or the filed copy once retention dropped them. */
export type ContentOrigin = 'mysql' | 'filed';

/** An opened attachment. */
export interface OpenedContent {
  stream: Readable;
  origin: ContentOrigin;
}

/**
 * Opens an attachment's bytes (all of them, or `range`): from the blob store while MySQL has them,
 * else from the filed copy (Drive `files.get` with `alt=media`, or `STORAGE_DIR`), streamed either way.
 * Bytes read from a filed copy are checked against the attachment's size and SHA-256 as they pass:
 * a copy edited in Drive makes the stream fail with `CONTENT.CORRUPT` at its end instead of serving
 * other bytes silently (a range can only be checked for its length).
 *
 * Rejects with `PermanentError`s: `CONTENT.NOT_STORED` (never kept: over the size limit),
 * `CONTENT.GONE` (dropped by retention and never filed), `FILE.GONE` (the filed copy was deleted).
 */
export async function openAttachmentContent(
  deps: AttachmentContentDeps,
  row: AttachmentBytesRow,
  range?: ByteRange,
): Promise<OpenedContent> {
  const details = { attachmentId: row.id, sha256: row.sha256 };
  if (!row.stored)
    throw new PermanentError(
      'CONTENT.NOT_STORED',
      `Attachment ${row.id} was never stored (over the size limit)`,
      { details },
    );
  if (await deps.blobs.stat(row.sha256)) {
    const whole = await deps.blobs.open(row.sha256);
    return { stream: range ? sliceStream(whole, range) : whole, origin: 'mysql' };
  }
  const filed = row.drive_file_id && (row.drive_status === 'uploaded' || row.drive_status === 'skipped');
  if (!filed || !row.drive_file_id)
    throw new PermanentError(
      'CONTENT.GONE',
      `The bytes of attachment ${row.id} are no longer kept and it was never filed`,
      { details },
    );
  const store = await deps.files();
  const stream = await store.openFile(row.drive_file_id, range);
  const expected = range
    ? { size: range.end - range.start + 1, sha256: null }
    : { size: row.size, sha256: row.sha256 };
  return { stream: checked(stream, expected, row.id), origin: 'filed' };
}

/** Reads an attachment whole into memory (small files only: Telegram uploads, tests). */
export async function readAttachmentContent(
  deps: AttachmentContentDeps,
  row: AttachmentBytesRow,
): Promise<Buffer> {
  const { stream } = await openAttachmentContent(deps, row);
  const parts: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

/** The bytes `range.start` to `range.end` of a stream that starts at byte 0; stops reading past the end. */
export function sliceStream(source: Readable, range: ByteRange): Readable {
  async function* slice(): AsyncGenerator<Buffer> {
    let pos = 0;
    for await (const chunk of source as AsyncIterable<Buffer>) {
      const next = pos + chunk.length;
      if (next > range.start)
        yield chunk.subarray(Math.max(0, range.start - pos), Math.min(chunk.length, range.end + 1 - pos));
      pos = next;
      if (pos > range.end) return; // leaving the loop destroys the source: no more chunks are read
    }
  }
  return Readable.from(slice(), { objectMode: false });
}

/** Passes the bytes through, failing the stream at its end when size or SHA-256 differ. */
function checked(
  source: Readable,
  expected: { size: number; sha256: string | null },
  attachmentId: string,
): Readable {
  const hash = createHash('sha256');
  let size = 0;
  // The last chunk is held back until the whole is checked: a client that was promised
  // Content-Length bytes then never receives them all from a bad copy, so it cannot take the
  // answer for complete.
  let held: Buffer | null = null;
  const corrupt = (digest: string | null) =>
    new PermanentError(
      'CONTENT.CORRUPT',
      `The filed copy of attachment ${attachmentId} holds other bytes (${size} read, ${expected.size} expected${digest !== expected.sha256 ? ', SHA-256 differs' : ''})`,
      { details: { attachmentId } },
    );
  const check = new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size > expected.size) return done(corrupt(null));
      if (expected.sha256) hash.update(chunk);
      const out = held;
      held = chunk;
      done(null, out ?? undefined);
    },
    flush(done) {
      const digest = expected.sha256 ? hash.digest('hex') : null;
      if (size !== expected.size || digest !== expected.sha256) return done(corrupt(digest));
      done(null, held ?? undefined);
    },
  });
  return pipeline(source, check, () => undefined);
}
