import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, stat, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import type { BlobStore } from '../../infra/blobs/blob-store.js';
import type { Db } from '../../infra/db/database.js';
import { recordEmail } from '../../infra/db/repositories/emails.repository.js';
import { describeError, PermanentError, PostroomError } from '../../infra/errors.js';
import type { Logger } from '../../infra/logger.js';
import { parseMessage } from '../../infra/mail/mime-parser.js';

/** Where mail is taken from, relative to the drop folder: its top level (`*.eml`) and a Maildir `new/`. */
const MAILDIR_NEW = 'new';
/** Where a recorded file goes, and where one that can never be recorded goes (with a `.error.txt`). */
export const DONE_DIR = 'done';
export const FAILED_DIR = 'failed';
/** Attempts at a file that keeps failing for a reason other than the database or the blob store. */
const MAX_ATTEMPTS = 3;

/** What the drop folder needs. */
export interface InboxFolderDeps {
  /** The drop folder (INBOX_DIR); created when missing. */
  dir: string;
  db: Db;
  blobs: BlobStore;
  log: Logger;
  /** Limits handed to the MIME parser (bytes), as for IMAP. */
  limits: { attachmentMaxBytes: number; messageMaxBytes: number };
  /** Time between scans (ms). Default 1000. */
  pollMs?: number;
  /**
   * How long a top-level `.eml` must go unwritten (modification time, size) before it is read (ms).
   * Default 2000. Files in the Maildir `new/` folder are read at once: Maildir writers put a file
   * there only by renaming it from `tmp/` when it is complete.
   */
  settleMs?: number;
  /** Called after a file's email is committed, before the file is moved (tests stop the process here). */
  afterCommit?: (file: string) => Promise<void> | void;
}

/** The drop folder's health, for /readyz. */
export interface InboxFolderHealth {
  /** The folder could be read at the last scan. */
  ready: boolean;
  dir: string;
  lastScanAt: Date | null;
  lastError: string | null;
  /** Files seen but not taken in yet (still settling, or failed and waiting for another attempt). */
  waiting: number;
}

/** The drop folder producer. */
export interface InboxFolder {
  /** Starts scanning every `pollMs`. */
  start(): void;
  /** Stops scanning; resolves when the file in progress (if any) is done. */
  stop(): Promise<void>;
  /** One scan: takes in every settled file; resolves with the number of files recorded and moved. */
  scan(): Promise<number>;
  health(): InboxFolderHealth;
}

interface Seen {
  size: number;
  mtimeMs: number;
}

/** `name` in `dir`, or `stem-2.ext`, `stem-3.ext`... when a file of that name is already there. */
async function freeName(dir: string, name: string): Promise<string> {
  const ext = extname(name);
  const stem = name.slice(0, name.length - ext.length);
  for (let n = 1; ; n++) {
    const candidate = join(dir, n === 1 ? name : `${stem}-${n}${ext}`);
    const exists = await stat(candidate).then(
      () => true,
      () => false,
    );
    if (!exists) return candidate;
  }
}

/** True for errors that say nothing about the file: the database or the blob store is away. */
function isTransient(err: unknown): boolean {
  if (err instanceof PostroomError) return err.retryable;
  const code = (err as { code?: unknown }).code;
  return (
    typeof code === 'string' &&
    /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|PROTOCOL_CONNECTION_LOST|ER_LOCK_DEADLOCK|ER_LOCK_WAIT_TIMEOUT)$/.test(
      code,
    )
  );
}

/**
 * A local drop folder as a mail source. Each `.eml` put in `dir` (or any file in its Maildir `new/`)
 * is parsed like an IMAP message and recorded through the same `recordEmail` transaction (emails row,
 * attachments, timeline, outbox events), with `source: file`; only after the commit is the file moved
 * to `done/`.
 *
 * Exactly once: a crash after the commit and before the move leaves the file in place; the next scan
 * parses it again and `recordEmail` finds its Message-ID (or, for a mail without one, the synthetic
 * Message-ID made from the SHA-256 of its bytes) already recorded, records nothing and moves the file.
 * Two processes on one folder race the same way: the unique key decides, the loser's move finds the
 * file gone.
 *
 * Never read early: a top-level `.eml` is taken only once it has gone unwritten for `settleMs` (its
 * modification time is that old and its size and mtime did not change since the previous scan), and it
 * is recorded only if they are still the same after it was read (a writer that resumes during the read
 * is caught). A writer that stalls for longer than `settleMs` in the middle of a file is the one case
 * this cannot tell from a finished file: no portable check says whether a file is still open. Names starting with `.` are never taken, so a writer
 * that writes `.name.eml` (or `name.eml.part`) and renames it into place is never read early at all;
 * that is also what a Maildir `tmp/` to `new/` delivery does.
 */
export function createInboxFolder(deps: InboxFolderDeps): InboxFolder {
  const { dir, log } = deps;
  const pollMs = deps.pollMs ?? 1000;
  const settleMs = deps.settleMs ?? 2000;
  const seen = new Map<string, Seen>();
  const attempts = new Map<string, number>();
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<number> | null = null;
  let stopped = true;
  let stopping = false;
  let health: InboxFolderHealth = { ready: false, dir, lastScanAt: null, lastError: null, waiting: 0 };

  /** Files that may be mail: `*.eml` at the top level and every file in `new/`; dot files never. */
  async function candidates(): Promise<{ path: string; name: string; settled: boolean }[]> {
    const found: { path: string; name: string; settled: boolean }[] = [];
    for (const entry of await readdir(dir, { withFileTypes: true }))
      if (entry.isFile() && !entry.name.startsWith('.') && extname(entry.name).toLowerCase() === '.eml')
        found.push({ path: join(dir, entry.name), name: entry.name, settled: false });
    const newDir = join(dir, MAILDIR_NEW);
    const inNew = await readdir(newDir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return [];
      throw err;
    });
    for (const entry of inNew)
      if (entry.isFile() && !entry.name.startsWith('.'))
        found.push({ path: join(newDir, entry.name), name: `${MAILDIR_NEW}/${entry.name}`, settled: true });
    return found;
  }

  /**
   * Whether a top-level file has not been written for `settleMs`: its modification time is that old
   * and its size and mtime are what the previous scan saw (a file seen for the first time, say after a
   * restart, only needs the old mtime: every write moves the mtime forward).
   */
  function settledNow(path: string, size: number, mtimeMs: number, now: number): boolean {
    const prev = seen.get(path);
    const unchanged = !prev || (prev.size === size && prev.mtimeMs === mtimeMs);
    if (!unchanged || !prev) seen.set(path, { size, mtimeMs });
    return unchanged && now - mtimeMs >= settleMs;
  }

  /** Moves a file into `sub` (done/ or failed/) under a free name; false when it is already gone. */
  async function moveTo(sub: string, path: string, name: string): Promise<string | null> {
    const target = join(dir, sub);
    await mkdir(target, { recursive: true });
    const to = await freeName(target, basename(name));
    try {
      await rename(path, to);
      return to;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null; // another process moved it
      throw err;
    }
  }

  /** Parses and records one file; moves it to done/. Returns false when it changed while being read. */
  async function takeIn(path: string, name: string, before: { size: number; mtimeMs: number }) {
    const parsed = await parseMessage(createReadStream(path), { blobs: deps.blobs }, deps.limits);
    const after = await stat(path);
    if (after.size !== before.size || after.mtimeMs !== before.mtimeMs) {
      log.info({ file: name }, 'drop folder: file changed while it was read; waiting for it to settle');
      seen.delete(path);
      return false;
    }
    const recorded = await recordEmail(deps.db, {
      source: 'file',
      file: name,
      parsed,
      // The file's arrival in the folder is its delivery, as the internal date is for IMAP.
      receivedAt: new Date(before.mtimeMs),
    });
    await deps.afterCommit?.(name);
    const to = await moveTo(DONE_DIR, path, name);
    log.info(
      {
        file: name,
        movedTo: to,
        correlationId: recorded.emailId,
        created: recorded.created,
        attachments: parsed.attachments.length,
      },
      recorded.created ? 'drop folder: mail recorded' : 'drop folder: mail was already recorded; file moved',
    );
    return true;
  }

  /** Gives up on a file that can never be recorded: failed/, with the reason beside it. */
  async function fail(path: string, name: string, reason: string): Promise<void> {
    const to = await moveTo(FAILED_DIR, path, name);
    if (to) await writeFile(`${to}.error.txt`, `${reason}\n`);
    log.error({ file: name, movedTo: to, reason }, 'drop folder: file cannot be taken in; moved aside');
  }

  async function scanOnce(): Promise<number> {
    let taken = 0;
    try {
      await mkdir(dir, { recursive: true });
      const files = await candidates();
      const present = new Set(files.map((f) => f.path));
      for (const path of seen.keys()) if (!present.has(path)) seen.delete(path);
      for (const path of attempts.keys()) if (!present.has(path)) attempts.delete(path);
      let waiting = 0;
      for (const f of files) {
        if (stopping) break;
        const st = await stat(f.path).catch(() => null);
        if (!st) continue; // moved away meanwhile
        if (!f.settled && !settledNow(f.path, st.size, st.mtimeMs, Date.now())) {
          waiting++;
          continue;
        }
        try {
          if (await takeIn(f.path, f.name, st)) {
            taken++;
            seen.delete(f.path);
            attempts.delete(f.path);
          } else waiting++;
        } catch (err) {
          if (isTransient(err)) {
            // The database or the blob store is away: the file stays, the next scan tries again.
            log.warn({ err, file: f.name }, 'drop folder: recording failed for now; will retry');
            waiting++;
            break;
          }
          if (err instanceof PermanentError) {
            await fail(f.path, f.name, `${err.code}: ${err.message}`);
            continue;
          }
          const n = (attempts.get(f.path) ?? 0) + 1;
          attempts.set(f.path, n);
          if (n >= MAX_ATTEMPTS) await fail(f.path, f.name, `failed ${n} times: ${describeError(err)}`);
          else {
            log.warn({ err, file: f.name, attempt: n }, 'drop folder: taking a file in failed');
            waiting++;
          }
        }
      }
      health = { ready: true, dir, lastScanAt: new Date(), lastError: null, waiting };
    } catch (err) {
      health = { ...health, ready: false, lastScanAt: new Date(), lastError: describeError(err) };
      log.warn({ err, dir }, 'drop folder: scan failed');
    }
    return taken;
  }

  function scan(): Promise<number> {
    // One scan at a time: a scan asked for while one runs waits for it, then runs its own.
    const previous = running ?? Promise.resolve(0);
    const next = previous.then(() => scanOnce());
    running = next;
    void next.finally(() => {
      if (running === next) running = null;
    });
    return next;
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      timer = null;
      void scan().finally(schedule);
    }, pollMs);
  }

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      stopping = false;
      log.info({ dir, settleMs }, 'drop folder: watching for .eml files (and a Maildir new/)');
      void scan().finally(schedule);
    },
    async stop() {
      stopped = true;
      stopping = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await running?.catch(() => undefined);
    },
    scan,
    health: () => health,
  };
}
