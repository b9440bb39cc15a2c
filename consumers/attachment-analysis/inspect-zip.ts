/**
 * Zip archives listed without extracting, with yauzl: its central directory (the table of contents at
 * the end of the file) is read entry by entry from the spooled temp file, which needs random access;
 * nothing is inflated, so a zip bomb costs no more than its listing. Sizes are the ones the archive
 * declares: a bomb that lies about them would be caught by whoever extracts it, not here.
 */
import yauzl from 'yauzl';
import type { Entry, ZipFile } from 'yauzl';
import { RetryableError } from '../../infra/errors.js';
import { PROGRAM_EXTENSIONS, extensionOf, formatBytes, shortName } from './file-kinds.js';

/** One file inside an archive. */
export interface ArchiveEntry {
  /** Path inside the archive, `/`-separated. */
  name: string;
  /** Bytes once unpacked, as the archive declares. */
  size: number;
  /** Bytes as stored in the archive. */
  compressedSize: number;
}

/** What is recorded about an archive. */
export interface ArchiveFacts {
  /** Its files (not folders), at most {@link ARCHIVE_LIST_MAX}, in archive order. */
  entries: ArchiveEntry[];
  /** How many files it holds (may exceed `entries.length`). */
  fileCount: number;
  /** Sum of the declared unpacked sizes, bytes. */
  uncompressedBytes: number;
  /** Sum of the stored sizes, bytes. */
  compressedBytes: number;
  /** `uncompressedBytes / compressedBytes`, two decimals (1 for an archive of empty files). */
  ratio: number;
  /** True when any file is password-protected: its name was checked, its contents could not be. */
  encrypted: boolean;
}

/** Bounds past which an archive counts as a zip bomb. */
export interface ZipLimits {
  /** Unpacked / packed, for the whole archive or any one large file. */
  maxRatio: number;
  /** Total unpacked bytes. */
  maxUncompressedBytes: number;
  /** Number of entries (files and folders). */
  maxEntries: number;
}

/** What the archive inspection found: a verdict other than `accepted` comes with its reason. */
export type ZipOutcome =
  | { verdict: 'accepted'; archive: ArchiveFacts }
  | { verdict: 'quarantined'; reason: string; archive: ArchiveFacts | null }
  | { verdict: 'rejected'; reason: string; archive: null };

/** At most this many files are recorded in {@link ArchiveFacts.entries}; all are judged. */
const ARCHIVE_LIST_MAX = 1000;

/** Below this many unpacked bytes a high ratio is ordinary (a page of repeated text), not a bomb. */
export const BOMB_MIN_BYTES = 1024 * 1024;

/**
 * Lists the zip at `path` (or in that Buffer) (`label` names it in reasons: "zip archive", "Word document") and judges it
 * (RULES.md, rule 5). Stops listing when `signal` aborts (rejecting with its reason). A damaged
 * archive is `rejected`; file-system trouble reading the temp file is a {@link RetryableError}.
 */
export async function inspectZip(
  path: string | Buffer,
  label: string,
  limits: ZipLimits,
  signal: AbortSignal,
): Promise<ZipOutcome> {
  let listing: Listing;
  try {
    listing = await list(path, limits.maxEntries, signal);
  } catch (err) {
    if (signal.aborted) throw err;
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
      throw new RetryableError('ANALYSIS.TEMP_FILE_FAILED', `reading the spooled archive failed (${code})`, {
        cause: err,
      });
    }
    const message = err instanceof Error ? err.message : String(err);
    const escape = /^(invalid relative path|absolute path): (.*)$/s.exec(message);
    if (escape) {
      const reason = `The ${label} holds a file that would be unpacked outside its folder ("${shortName(escape[2] ?? '')}"), a trick used to overwrite files.`;
      return { verdict: 'quarantined', reason, archive: null };
    }
    const reason = `The ${label} is damaged, so its contents cannot be listed (${message.slice(0, 200)}).`;
    return { verdict: 'rejected', reason, archive: null };
  }
  if (listing.entryCount > limits.maxEntries) {
    const reason = `The ${label} holds ${listing.entryCount} entries, more than the ${limits.maxEntries} allowed; archives that large are quarantined as possible zip bombs.`;
    return { verdict: 'quarantined', reason, archive: null };
  }
  const archive = summarize(listing);
  const reason = programsInside(label, listing) ?? bomb(label, listing, archive, limits);
  return reason === null ? { verdict: 'accepted', archive } : { verdict: 'quarantined', reason, archive };
}

interface Listing {
  /** Entries the archive declares (from its end record), files and folders. */
  entryCount: number;
  /** Every entry read, folders included. */
  entries: { name: string; size: number; compressedSize: number; folder: boolean; encrypted: boolean }[];
}

function list(path: string | Buffer, maxEntries: number, signal: AbortSignal): Promise<Listing> {
  return new Promise((resolve, reject) => {
    const opened = (openError: Error | null, zipfile: ZipFile): void => {
      if (openError) return reject(openError);
      const listing: Listing = { entryCount: zipfile.entryCount, entries: [] };
      const finish = (err?: unknown): void => {
        signal.removeEventListener('abort', onAbort);
        zipfile.close();
        if (err === undefined) resolve(listing);
        else reject(err);
      };
      const onAbort = (): void => finish(signal.reason);
      if (signal.aborted) return finish(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      // the count is in the end record: a huge archive is judged before a single entry is read
      if (zipfile.entryCount > maxEntries) return finish();
      zipfile.on('entry', (entry: Entry) => {
        listing.entries.push({
          name: entry.fileName,
          size: entry.uncompressedSize,
          compressedSize: entry.compressedSize,
          folder: entry.fileName.endsWith('/'),
          encrypted: entry.isEncrypted(),
        });
        if (!signal.aborted) zipfile.readEntry();
      });
      zipfile.once('end', () => finish());
      zipfile.once('error', (err: Error) => finish(err));
      zipfile.readEntry();
    };
    const options = { lazyEntries: true, autoClose: false };
    if (typeof path === 'string') yauzl.open(path, options, opened);
    else yauzl.fromBuffer(path, options, opened);
  });
}

function summarize(listing: Listing): ArchiveFacts {
  const files = listing.entries.filter((e) => !e.folder);
  const uncompressedBytes = files.reduce((sum, e) => sum + e.size, 0);
  const compressedBytes = files.reduce((sum, e) => sum + e.compressedSize, 0);
  return {
    entries: files
      .slice(0, ARCHIVE_LIST_MAX)
      .map(({ name, size, compressedSize }) => ({ name, size, compressedSize })),
    fileCount: files.length,
    uncompressedBytes,
    compressedBytes,
    ratio: ratioOf(uncompressedBytes, compressedBytes),
    encrypted: files.some((e) => e.encrypted),
  };
}

/** Unpacked / packed, two decimals; an empty archive is 1, and nothing packed into something is its size. */
function ratioOf(uncompressed: number, compressed: number): number {
  if (uncompressed === 0) return 1;
  return Math.round((uncompressed / Math.max(compressed, 1)) * 100) / 100;
}

/** A name that runs a program: the file's own extension, or an `.app` bundle folder on its path. */
function isProgramPath(name: string): boolean {
  const parts = name.split('/').filter((p) => p !== '');
  const last = parts.pop() ?? '';
  return (
    (!name.endsWith('/') && PROGRAM_EXTENSIONS.has(extensionOf(last))) ||
    [...parts, last].some((p) => /\.app$/i.test(p))
  );
}

function programsInside(label: string, listing: Listing): string | null {
  const programs = listing.entries.filter((e) => isProgramPath(e.name)).map((e) => e.name);
  if (programs.length === 0) return null;
  const shown = programs
    .slice(0, 3)
    .map((n) => `"${shortName(n)}"`)
    .join(', ');
  const more = programs.length > 3 ? ` and ${programs.length - 3} more` : '';
  return `The ${label} holds programs or scripts (${shown}${more}); archives with programs inside are quarantined.`;
}

function bomb(label: string, listing: Listing, archive: ArchiveFacts, limits: ZipLimits): string | null {
  const expand = (packed: number, unpacked: number): string =>
    `would expand from ${formatBytes(packed)} to ${formatBytes(unpacked)} (${Math.round(unpacked / Math.max(packed, 1))} times)`;
  const tail = `archives that expand more than ${limits.maxRatio} times are quarantined as possible zip bombs.`;
  if (archive.uncompressedBytes > limits.maxUncompressedBytes) {
    return `The ${label} would expand to ${formatBytes(archive.uncompressedBytes)}, more than the ${formatBytes(limits.maxUncompressedBytes)} allowed; it is quarantined as a possible zip bomb.`;
  }
  if (archive.uncompressedBytes >= BOMB_MIN_BYTES && archive.ratio > limits.maxRatio) {
    return `The ${label} ${expand(archive.compressedBytes, archive.uncompressedBytes)}; ${tail}`;
  }
  // one bomb among incompressible files would hide in the whole archive's ratio
  const worst = listing.entries.find(
    (e) => !e.folder && e.size >= BOMB_MIN_BYTES && ratioOf(e.size, e.compressedSize) > limits.maxRatio,
  );
  if (worst)
    return `"${shortName(worst.name)}" in the ${label} ${expand(worst.compressedSize, worst.size)}; ${tail}`;
  return null;
}
