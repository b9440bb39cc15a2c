/**
 * Copies an attachment from the blob store's stream to memory, or to a private temp file when it is
 * larger than {@link MEMORY_SPOOL_BYTES}, counting bytes and keeping the first ones for sniffing. The
 * inspections need random access (yauzl reads a zip from its end, file-type may jump around, sharp
 * reads the header first): a Buffer gives it for small files without touching the disk; a temp file
 * gives it at the cost of one disk write and keeps memory flat whatever the size, where buffering would
 * hold up to ATTACHMENT_MAX_BYTES per file in flight.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SAMPLE_BYTES } from './detect-type.js';

/** Files up to this many bytes (1 MiB) are held in memory instead of a temp file. */
const MEMORY_SPOOL_BYTES = 1024 * 1024;

/** A spooled attachment. */
export interface SpooledFile {
  /** The temp file's path (only this process knows it), or null when the bytes are in `bytes`. */
  path: string | null;
  /** The whole file when it is held in memory, else null. */
  bytes: Buffer | null;
  /** Bytes written. */
  size: number;
  /** The first bytes (at most {@link SAMPLE_BYTES}). */
  sample: Buffer;
  /** Deletes the temp file and its folder (nothing to do in memory); safe to call twice. */
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
async function spoolToTempFile(
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
  return { file: { path, bytes: null, size, sample: Buffer.concat(head), dispose } };
}

/** The bytes read so far, then the rest of the stream. */
async function* resume(
  parts: Buffer[],
  rest: AsyncIterator<Buffer | string>,
): AsyncGenerator<Buffer | string> {
  yield* parts;
  for (;;) {
    const next = await rest.next();
    if (next.done) return;
    yield next.value;
  }
}

/**
 * Reads `source` into memory while it stays within `memoryMax` bytes; past that, hands the bytes read
 * and the rest of the stream to {@link spoolToTempFile}. Refuses more than `maxBytes` either way, and
 * fails like {@link spoolToTempFile}: the signal's reason when `signal` aborts, a {@link SpoolError}
 * when the stream or the disk fails.
 */
export async function spool(
  source: Readable,
  maxBytes: number,
  tempDir: string,
  signal: AbortSignal,
  memoryMax = MEMORY_SPOOL_BYTES,
): Promise<SpoolResult> {
  if (signal.aborted) {
    source.destroy();
    throw signal.reason;
  }
  // A stalled stream is ended by the abort (then the pending read rejects).
  const onAbort = (): void => void source.destroy(new Error('spooling aborted'));
  signal.addEventListener('abort', onAbort, { once: true });
  const iterator = (source as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
  const parts: Buffer[] = [];
  let size = 0;
  try {
    for (;;) {
      let next: IteratorResult<Buffer | string>;
      try {
        next = await iterator.next();
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        throw new SpoolError('source', err);
      }
      if (next.done) break;
      const bytes = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
      size += bytes.length;
      if (size > maxBytes) {
        source.destroy();
        return { tooLarge: true, bytesRead: size };
      }
      parts.push(bytes);
      if (size > memoryMax)
        return await spoolToTempFile(Readable.from(resume(parts, iterator)), maxBytes, tempDir, signal);
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  if (signal.aborted) throw signal.reason;
  const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
  return {
    file: {
      path: null,
      bytes,
      size,
      sample: bytes.subarray(0, SAMPLE_BYTES),
      dispose: () => Promise.resolve(),
    },
  };
}
