/**
 * Copies an attachment from the blob store's stream to a private temp file, counting bytes and keeping
 * the first ones in memory for sniffing. The inspections need random access (yauzl reads a zip from its
 * end, file-type may jump around, sharp reads the header first): a temp file gives it at the cost of one
 * disk write, and keeps memory flat whatever the size; buffering would hold up to ATTACHMENT_MAX_BYTES
 * per file in flight.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SAMPLE_BYTES } from './detect-type.js';

/** A spooled attachment. */
export interface SpooledFile {
  /** The temp file's path; only this process knows it. */
  path: string;
  /** Bytes written. */
  size: number;
  /** The first bytes (at most {@link SAMPLE_BYTES}). */
  sample: Buffer;
  /** Deletes the temp file and its folder; safe to call twice. */
  dispose(): Promise<void>;
}

/** What spooling gave: the file, or the news that the stream went past `maxBytes` (nothing is kept). */
export type SpoolResult = { file: SpooledFile } | { tooLarge: true; bytesRead: number };

/** Where spooling failed: the source stream, or the temp file (both are worth another attempt). */
export class SpoolError extends Error {
  constructor(
    readonly side: 'source' | 'temp-file',
    cause: unknown,
  ) {
    super(`spooling failed on the ${side} side: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
    this.name = 'SpoolError';
  }
}

class TooLarge extends Error {}

/**
 * Writes `source` to a new temp file under `tempDir`, refusing more than `maxBytes`. Rejects with the
 * signal's reason when `signal` aborts, and with a {@link SpoolError} when the stream or the disk fails.
 */
export async function spoolToTempFile(
  source: Readable,
  maxBytes: number,
  tempDir: string,
  signal: AbortSignal,
): Promise<SpoolResult> {
  let dir: string;
  try {
    dir = await mkdtemp(join(tempDir, 'postroom-analysis-'));
  } catch (err) {
    source.destroy();
    throw new SpoolError('temp-file', err);
  }
  const dispose = (): Promise<void> => rm(dir, { recursive: true, force: true });
  const path = join(dir, 'attachment');
  let size = 0;
  const head: Buffer[] = [];
  let headBytes = 0;
  let sourceFailed: unknown;
  source.once('error', (err) => (sourceFailed ??= err));
  const meter = new Transform({
    transform(chunk: Buffer | string, _encoding, callback) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += bytes.length;
      if (size > maxBytes) return callback(new TooLarge());
      if (headBytes < SAMPLE_BYTES) {
        const part = bytes.subarray(0, SAMPLE_BYTES - headBytes);
        head.push(part);
        headBytes += part.length;
      }
      callback(null, bytes);
    },
  });
  try {
    await pipeline(source, meter, createWriteStream(path, { flags: 'wx', mode: 0o600 }), { signal });
  } catch (err) {
    await dispose().catch(() => undefined);
    if (err instanceof TooLarge) return { tooLarge: true, bytesRead: size };
    if (signal.aborted) throw signal.reason;
    throw new SpoolError(sourceFailed === undefined ? 'temp-file' : 'source', sourceFailed ?? err);
  }
  return { file: { path, size, sample: Buffer.concat(head), dispose } };
}
