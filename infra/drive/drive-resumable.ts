import { Readable } from 'node:stream';
import type { drive_v3 } from '@googleapis/drive';
import { PermanentError, PostroomError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { DriveAuthClient } from './drive-auth.js';
import {
  backoffDelay,
  describeDriveFailure,
  sleep,
  toDriveError,
  withDriveRetry,
  type RetryPolicy,
} from './drive-errors.js';

/** Drive wants every chunk but the last to be a multiple of 256 KiB. */
export const CHUNK_GRANULE = 256 * 1024;

/** One resumable upload. */
export interface ResumableUpload {
  auth: DriveAuthClient;
  /** Drive API root, ending in `/`. */
  rootUrl: string;
  /** The new file's metadata (with its reserved `id`). */
  metadata: drive_v3.Schema$File;
  mimeType: string;
  /** Total bytes. */
  size: number;
  /** Opens the bytes from the start (again when the session must restart). */
  open: () => Readable | Promise<Readable>;
  /** Bytes per PUT, a multiple of 256 KiB. */
  chunkBytes: number;
  /** `fields` of the final answer. */
  fields: string;
  policy: RetryPolicy;
  /** Ids for logs and errors. */
  details: Record<string, unknown>;
  log?: Logger;
}

/**
 * Uploads with Drive's resumable protocol, which the googleapis client does not implement: a POST
 * with the metadata opens a session (its URI comes back in `Location`), then the bytes go in PUTs of
 * `chunkBytes` with `Content-Range: bytes a-b/total`. Drive answers `308 Resume Incomplete` with
 * `Range: bytes=0-N` until the last one, which gets the file. After a failed PUT (5xx, 429, a dropped
 * connection) the session is asked how much it holds (`Content-Range: bytes *\/total`) and the upload
 * goes on from there, re-reading only what is missing; an expired session (404/410) starts over. A
 * 409 from the first POST (the reserved id is taken) surfaces as `DRIVE.CONFLICT`.
 */
export async function uploadResumable(u: ResumableUpload): Promise<drive_v3.Schema$File> {
  const source = new ChunkSource(u.open, u.size);
  try {
    let session = await startSession(u);
    let offset = 0;
    let failures = 0;
    let restarts = 0;
    for (;;) {
      const length = Math.min(u.chunkBytes, u.size - offset);
      try {
        const pieces = await source.read(offset, length);
        const res = await u.auth.request<drive_v3.Schema$File>({
          ...sessionRequest(session, `bytes ${offset}-${offset + length - 1}/${u.size}`, length),
          // The source's own pieces as the body: no chunk-sized copy is made, and a resend after a
          // failure streams the same pieces again. A stream has no length of its own: say it, so the
          // PUT is not sent chunked.
          data: Readable.from(handOver(pieces), { objectMode: false }),
        });
        failures = 0;
        if (res.status !== 308) return res.data;
        offset = committed(res.headers);
        u.log?.debug({ ...u.details, offset, size: u.size }, 'Drive upload progress');
      } catch (err) {
        if (err instanceof PostroomError) throw err;
        const f = describeDriveFailure(err);
        if ((f.status === 404 || f.status === 410) && restarts++ < 2) {
          u.log?.warn({ ...u.details, offset }, 'Drive upload session expired: starting over');
          session = await startSession(u);
          offset = 0;
          continue;
        }
        if (!f.retryable || ++failures >= u.policy.attempts)
          throw toDriveError(err, 'upload chunk', { ...u.details, offset, attempts: failures });
        u.log?.warn(
          { ...u.details, offset, status: f.status, reason: f.reason },
          'Drive upload chunk failed: resuming',
        );
        await sleep(backoffDelay(u.policy, failures, f.retryAfterMs));
        const status = await withDriveRetry('query upload status', u.details, u.policy, () =>
          u.auth.request<drive_v3.Schema$File>(sessionRequest(session, `bytes */${u.size}`)),
        );
        if (status.status !== 308) return status.data;
        offset = committed(status.headers);
      }
    }
  } finally {
    source.close();
  }
}

/**
 * Yields the pieces and forgets each one as it goes: the answer keeps the request body (gaxios's
 * `config`) alive for a while, and it must not keep a chunk's bytes alive with it.
 */
function* handOver(pieces: Buffer[]): Generator<Buffer> {
  for (let piece = pieces.shift(); piece; piece = pieces.shift()) yield piece;
}

/** Opens a session and returns its URI, moved under `rootUrl` when Drive answers with its own host. */
async function startSession(u: ResumableUpload): Promise<string> {
  return withDriveRetry('start resumable upload', u.details, u.policy, async () => {
    const res = await u.auth.request({
      url: `${u.rootUrl}upload/drive/v3/files`,
      method: 'POST',
      params: { uploadType: 'resumable', supportsAllDrives: true, fields: u.fields },
      headers: {
        'Content-Type': 'application/json; charset=UTF-8',
        'X-Upload-Content-Type': u.mimeType,
        'X-Upload-Content-Length': String(u.size),
      },
      data: JSON.stringify(u.metadata),
      retry: false,
    });
    const location = header(res.headers, 'location');
    if (!location)
      throw new PermanentError('DRIVE.BAD_RESPONSE', 'Drive opened an upload session without a Location');
    return onRoot(location, u.rootUrl);
  });
}

/** A PUT to the session; `length` is the body's size (none for a status query). */
function sessionRequest(session: string, contentRange: string, length?: number) {
  return {
    url: session,
    method: 'PUT' as const,
    headers: {
      'Content-Range': contentRange,
      ...(length === undefined ? {} : { 'Content-Length': String(length) }),
    },
    // 308 is "go on", not a redirect: no Location comes with it, and it must reach us as an answer.
    validateStatus: (s: number) => (s >= 200 && s < 300) || s === 308,
    redirect: 'manual' as const,
    retry: false,
  };
}

/** The first byte Drive does not hold yet, from a 308's `Range: bytes=0-N` (none yet: no header). */
function committed(headers: unknown): number {
  const m = /bytes=0-(\d+)/.exec(header(headers, 'range') ?? '');
  return m ? Number(m[1]) + 1 : 0;
}

function header(headers: unknown, name: string): string | undefined {
  if (headers && typeof (headers as Headers).get === 'function')
    return (headers as Headers).get(name) ?? undefined;
  return (headers as Record<string, string> | undefined)?.[name];
}

/** Rebuilds a session URI on `rootUrl` (a proxy, a test server) keeping its `upload/...` path and query. */
function onRoot(location: string, rootUrl: string): string {
  const url = new URL(location, rootUrl);
  const at = url.pathname.indexOf('/upload/drive/v3/');
  if (at < 0) return url.href;
  return new URL(`${url.pathname.slice(at + 1)}${url.search}`, rootUrl).href;
}

/**
 * Reads the bytes of a chunk at any offset, as the pieces the source gave (views, never copies):
 * forward reads keep streaming, a step back within the chunk last read is served from the pieces still
 * held, and a step further back reopens the source. Only the pieces from the last offset asked for on
 * are held, so memory stays at about one chunk.
 */
class ChunkSource {
  private stream: Readable | null = null;
  private iterator: AsyncIterator<Buffer> | null = null;
  /** Pieces read and not yet dropped, in order; `pieces[0]` starts at `start`. */
  private pieces: Buffer[] = [];
  /** Bytes in `pieces`. */
  private held = 0;
  /** Offset of `pieces[0][0]` in the source. */
  private start = 0;
  /** The source has been read to its end. */
  private ended = false;

  constructor(
    private readonly open: () => Readable | Promise<Readable>,
    private readonly size: number,
  ) {}

  /** The `length` bytes at `offset`, as views of the source's pieces. */
  async read(offset: number, length: number): Promise<Buffer[]> {
    if (this.iterator === null || offset < this.start) await this.reopen();
    // Drop what lies before `offset` (Drive holds it), reading past the held pieces if needed.
    while (this.start < offset) {
      if (this.pieces.length === 0) await this.pull();
      const first = this.pieces[0]!;
      const drop = Math.min(offset - this.start, first.length);
      if (drop === first.length) this.pieces.shift();
      else this.pieces[0] = first.subarray(drop);
      this.held -= drop;
      this.start += drop;
    }
    while (this.held < length) await this.pull();
    if (offset + length === this.size && !this.ended) {
      // The last chunk: the source must end with it. Reading its end before the PUT that makes the
      // file also lets the source check itself (the blob store verifies the SHA-256 there).
      if (this.held > length || (await this.pullPiece()) !== null) this.mismatch('went on past');
      this.ended = true;
    }
    const chunk: Buffer[] = [];
    let want = length;
    for (const piece of this.pieces) {
      if (want === 0) break;
      const part = piece.length <= want ? piece : piece.subarray(0, want);
      chunk.push(part);
      want -= part.length;
    }
    return chunk;
  }

  close(): void {
    this.stream?.destroy();
  }

  private async reopen(): Promise<void> {
    this.close();
    this.pieces = [];
    this.held = 0;
    this.start = 0;
    this.ended = false;
    this.stream = await this.open();
    this.iterator = this.stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** Appends the source's next piece; the source ending here is an error (the size was announced). */
  private async pull(): Promise<void> {
    const piece = await this.pullPiece();
    if (piece === null) this.mismatch('ended before');
    this.pieces.push(piece);
    this.held += piece.length;
  }

  /** The source's next non-empty piece, or null at its end. */
  private async pullPiece(): Promise<Buffer | null> {
    for (;;) {
      const r = await this.iterator!.next();
      if (r.done) return null;
      const piece = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
      if (piece.length > 0) return piece;
    }
  }

  private mismatch(how: string): never {
    throw new PermanentError(
      'DRIVE.SOURCE_SIZE_MISMATCH',
      `The bytes to upload ${how} the ${this.size} bytes announced`,
    );
  }
}
