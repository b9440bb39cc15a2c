/**
 * The verdict on one attachment, from its bytes. The rules, in the order they are applied, are written
 * for users in RULES.md; the numbers in the comments below refer to them. Content problems become
 * verdicts; only trouble that may heal (the blob store, the temp disk) is thrown, as a RetryableError.
 */
import { tmpdir } from 'node:os';
import type { Readable } from 'node:stream';
import type { Static } from '@sinclair/typebox';
import type { Verdict } from '../../contracts/attachment-analyzed.v1.js';
import { PostroomError, RetryableError } from '../../infra/errors.js';
import { detectType, svgHasScript } from './detect-type.js';
import type { Detection } from './detect-type.js';
import {
  PROGRAM_EXTENSIONS,
  extensionOf,
  formatBytes,
  isTextType,
  labelOf,
  normalizeType,
  typeOfExtension,
} from './file-kinds.js';
import { ImageTimeoutError, PREVIEWABLE_TYPES, inspectImage } from './inspect-image.js';
import type { ImageFacts } from './inspect-image.js';
import { inspectZip } from './inspect-zip.js';
import type { ArchiveFacts } from './inspect-zip.js';
import { acceptedReason, programNameReason, programReason, svgScriptReason } from './reasons.js';
import { spool, SpoolError } from './spool.js';
import type { SpooledFile } from './spool.js';

export type { ImageFacts } from './inspect-image.js';
export type { ArchiveEntry, ArchiveFacts } from './inspect-zip.js';

/** One attachment to judge: how to read its bytes and what its sender said about it. */
export interface AnalysisInput {
  /** Opens a fresh stream of the stored bytes (the blob store's `open(sha256)`). */
  open: () => Promise<Readable>;
  /** Bytes, as recorded when the attachment arrived. */
  size: number;
  /** False when the bytes were over the size limit on arrival and were not kept. */
  stored: boolean;
  /** Name as filed (already made safe). */
  filename: string;
  /** MIME type the sender declared (may carry parameters, may be generic or wrong). */
  declaredType: string;
}

/** Bounds of the analysis; the optional ones have the defaults exported below. */
export interface AnalysisLimits {
  /** Larger files are rejected unread (`ATTACHMENT_MAX_BYTES`). */
  attachmentMaxBytes: number;
  /** Images declaring more pixels are rejected without decoding (`IMAGE_MAX_PIXELS`). */
  imageMaxPixels: number;
  /** Milliseconds for the whole analysis of one file, reading included. */
  timeoutMs: number;
  /** Unpacked / packed past which a zip is a possible bomb; default {@link DEFAULT_MAX_ZIP_RATIO}. */
  maxZipRatio?: number;
  /** Total unpacked bytes past which a zip is a possible bomb; default {@link DEFAULT_MAX_ZIP_UNCOMPRESSED_BYTES}. */
  maxZipUncompressedBytes?: number;
  /** Entries past which a zip is a possible bomb; default {@link DEFAULT_MAX_ZIP_ENTRIES}. */
  maxZipEntries?: number;
  /** Longest side of thumbnails, pixels; default {@link DEFAULT_THUMBNAIL_SIZE}. */
  thumbnailSize?: number;
  /** Files up to this many bytes are analysed in memory, larger ones from a temp copy; default 1 MiB. */
  memoryMaxBytes?: number;
  /** Folder for the temp copy of files over `memoryMaxBytes`; default the OS temp folder. */
  tempDir?: string;
}

/** The verdict on one attachment, with what was learnt from its bytes. */
export interface AnalysisResult {
  /** `accepted` files go on to Drive; `quarantined` ones are dangerous; `rejected` ones unusable. */
  verdict: Static<typeof Verdict>;
  /** Why, in words a user understands (at most 2000 characters, as the contract allows). */
  reason: string;
  /** MIME type found in the bytes; null when unread or unrecognised. */
  detectedType: string | null;
  /** Image facts, when the file is an image sharp could read the header of. */
  image: ImageFacts | null;
  /** WebP thumbnail (longest side at most `thumbnailSize`, orientation applied) of accepted images. */
  thumbnail: Buffer | null;
  /** The listing of zip archives and zip-based documents (docx, xlsx, odt, epub). */
  archive: ArchiveFacts | null;
}

/** Default bound of unpacked / packed size for zips. */
export const DEFAULT_MAX_ZIP_RATIO = 100;
/** Default bound of total unpacked bytes for zips: 1 GiB. */
export const DEFAULT_MAX_ZIP_UNCOMPRESSED_BYTES = 1024 ** 3;
/** Default bound of entries in a zip. */
export const DEFAULT_MAX_ZIP_ENTRIES = 10_000;
/** Default longest side of thumbnails, pixels. */
export const DEFAULT_THUMBNAIL_SIZE = 256;

/** The time limit passed while the bytes were being inspected (not read). */
class TimeLimitPassed extends Error {}

/**
 * Judges one attachment by its bytes (RULES.md). Resolves with a verdict for every content problem,
 * time-outs of the inspection included; rejects with a {@link RetryableError} when the bytes cannot be
 * read (store unreachable, stream failing or stalling past the time limit, temp disk trouble), or with
 * the store's own {@link PostroomError} (such as `BLOB.NOT_FOUND`) unchanged.
 */
export async function analyzeAttachment(
  input: AnalysisInput,
  limits: AnalysisLimits,
): Promise<AnalysisResult> {
  // rule 1: too large, or not kept on arrival
  if (!input.stored || input.size > limits.attachmentMaxBytes) {
    return tooLarge(input.size, limits, !input.stored);
  }

  const deadline = Date.now() + limits.timeoutMs;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new TimeLimitPassed()), limits.timeoutMs);
  let file: SpooledFile | undefined;
  try {
    const spooled = await read(input, limits, controller.signal);
    if ('tooLarge' in spooled) return tooLarge(null, limits, false);
    file = spooled.file;
    // rule 2: empty
    if (file.size === 0) {
      return verdict('rejected', 'The file is empty (0 bytes): there is nothing to file.', null);
    }
    return await untilAborted(judge(file, input, limits, deadline, controller.signal), controller.signal);
  } catch (err) {
    if (err instanceof TimeLimitPassed || err instanceof ImageTimeoutError) {
      // rule 9: the same bytes would take as long again, so this is a verdict, not a retry
      const limit =
        limits.timeoutMs < 1000 ? `${limits.timeoutMs} ms` : `${Math.round(limits.timeoutMs / 100) / 10} s`;
      const reason = `Analysis took longer than the ${limit} limit and was stopped; the file may be damaged or unusually complex.`;
      return verdict('rejected', reason, null);
    }
    throw err;
  } finally {
    clearTimeout(timer);
    await file?.dispose().catch(() => undefined);
  }
}

/** Opens the blob and spools it; every failure here may heal, so it is retryable. */
async function read(input: AnalysisInput, limits: AnalysisLimits, signal: AbortSignal) {
  try {
    const opening = input.open();
    // a stream that opens after the time-out is closed at once, not left hanging
    opening.then(
      (late) => signal.aborted && late.destroy(),
      () => undefined,
    );
    const source = await untilAborted(opening, signal);
    const tempDir = limits.tempDir ?? tmpdir();
    return await spool(source, limits.attachmentMaxBytes, tempDir, signal, limits.memoryMaxBytes);
  } catch (err) {
    if (err instanceof TimeLimitPassed) {
      // slow reading is the store's trouble, not the file's: try again later
      throw new RetryableError(
        'ANALYSIS.READ_TIMEOUT',
        `reading the attachment from the blob store took longer than ${limits.timeoutMs} ms`,
        { cause: err },
      );
    }
    const cause = err instanceof SpoolError ? err.cause : err;
    if (cause instanceof PostroomError) throw cause;
    const temp = err instanceof SpoolError && err.side === 'temp-file';
    throw new RetryableError(
      temp ? 'ANALYSIS.TEMP_FILE_FAILED' : 'ANALYSIS.READ_FAILED',
      temp
        ? 'writing the temp copy of the attachment failed'
        : 'reading the attachment from the blob store failed',
      { cause },
    );
  }
}

async function judge(
  file: SpooledFile,
  input: AnalysisInput,
  limits: AnalysisLimits,
  deadline: number,
  signal: AbortSignal,
): Promise<AnalysisResult> {
  // the bytes themselves for a small file, the temp file's path for a large one
  const contents = file.bytes ?? file.path!;
  const detection = await detectType(contents, file.sample);
  signal.throwIfAborted(); // after a time-out this work finishes alone: stop it at each step
  // rule 3: program or script content, whatever it is called
  if (detection.program !== null) {
    return verdict('quarantined', programReason(detection.program, input), detection.mime);
  }
  // rule 4: a name that runs programs, whatever is inside
  const ext = extensionOf(input.filename);
  if (PROGRAM_EXTENSIONS.has(ext)) {
    return verdict('quarantined', programNameReason(input.filename, ext), detection.mime);
  }

  const detectedType = refine(detection, input);
  const label = labelOf(detectedType ?? 'application/octet-stream', detection.ext ?? undefined);
  // rule 5: zip archives and zip-based documents
  let archive: ArchiveFacts | null = null;
  if (isZip(file.sample)) {
    const zipLimits = {
      maxRatio: limits.maxZipRatio ?? DEFAULT_MAX_ZIP_RATIO,
      maxUncompressedBytes: limits.maxZipUncompressedBytes ?? DEFAULT_MAX_ZIP_UNCOMPRESSED_BYTES,
      maxEntries: limits.maxZipEntries ?? DEFAULT_MAX_ZIP_ENTRIES,
    };
    const zip = await inspectZip(contents, label, zipLimits, signal);
    if (zip.verdict !== 'accepted') {
      return { ...verdict(zip.verdict, zip.reason, detectedType), archive: zip.archive };
    }
    archive = zip.archive;
  }
  // rule 6: images
  signal.throwIfAborted();
  if (detectedType !== null && PREVIEWABLE_TYPES.has(detectedType)) {
    const options = {
      maxPixels: limits.imageMaxPixels,
      thumbnailSize: limits.thumbnailSize ?? DEFAULT_THUMBNAIL_SIZE,
      deadline,
    };
    const found = await inspectImage(contents, label, options);
    if (!found.ok) return { ...verdict('rejected', found.reason, detectedType), image: found.image };
    const facts = `${found.image.width} × ${found.image.height} pixels`;
    const reason = acceptedReason(label, detectedType, input, facts);
    return { ...verdict('accepted', reason, detectedType), image: found.image, thumbnail: found.thumbnail };
  }
  // rule 7: SVG images with scripts
  if (detection.text && (await svgHasScript(contents, file.sample))) {
    return verdict('quarantined', svgScriptReason(input.filename), 'image/svg+xml');
  }
  // rule 8: harmless contents, whatever they were called
  const extra = archive === null ? undefined : archiveFacts(archive);
  return { ...verdict('accepted', acceptedReason(label, detectedType, input, extra), detectedType), archive };
}

/** The detected type, made precise for text: the declared or named text type when it fits (rule 8). */
function refine(detection: Detection, input: AnalysisInput): string | null {
  if (!detection.text) return detection.mime;
  const declared = normalizeType(input.declaredType);
  if (isTextType(declared)) return declared;
  const named = typeOfExtension(input.filename);
  return named !== null && isTextType(named) ? named : detection.mime;
}

function archiveFacts(archive: ArchiveFacts): string {
  const files = `${archive.fileCount} file${archive.fileCount === 1 ? '' : 's'}, ${formatBytes(archive.uncompressedBytes)} unpacked`;
  return archive.encrypted
    ? `${files}, password-protected (the names were checked, the contents could not be)`
    : files;
}

/** `PK\3\4` (a zip's first local header) or `PK\5\6` (the end record of an empty zip). */
function isZip(sample: Buffer): boolean {
  const magic = sample.subarray(0, 4).toString('latin1');
  return magic === 'PK\x03\x04' || magic === 'PK\x05\x06';
}

/** Rule 1: `size` is the recorded size, or null when reading went past the limit (the rest was not read). */
function tooLarge(size: number | null, limits: AnalysisLimits, notKept: boolean): AnalysisResult {
  const limit = formatBytes(limits.attachmentMaxBytes);
  if (size === null) {
    return verdict(
      'rejected',
      `It is larger than the ${limit} limit (reading stopped there), so it was not analysed.`,
      null,
    );
  }
  if (size <= limits.attachmentMaxBytes) {
    const reason = `Its bytes were not kept when it arrived (it was over the ${limit} limit), so it cannot be analysed.`;
    return verdict('rejected', reason, null);
  }
  const reason = `It is ${formatBytes(size)}, larger than the ${limit} limit, so it was ${notKept ? 'not kept' : 'not analysed'}.`;
  return verdict('rejected', reason, null);
}

function verdict(v: AnalysisResult['verdict'], reason: string, detectedType: string | null): AnalysisResult {
  return {
    verdict: v,
    reason: reason.slice(0, 2000),
    detectedType,
    image: null,
    thumbnail: null,
    archive: null,
  };
}

/** Settles with `work`, or rejects with the signal's reason once it aborts (`work` is left to finish alone). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  work.catch(() => undefined); // a late failure after the abort must not surface as unhandled
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => (signal.removeEventListener('abort', onAbort), resolve(value)),
      (err) => (signal.removeEventListener('abort', onAbort), reject(err)),
    );
  });
}
