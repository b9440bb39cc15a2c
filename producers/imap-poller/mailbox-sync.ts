import type { FetchMessageObject, ImapFlow } from 'imapflow';
import { sql } from 'kysely';
import type { BlobStore } from '../../infra/blobs/blob-store.js';
import type { Db } from '../../infra/db/database.js';
import {
  getImapCheckpoint,
  listPendingImapAfter,
  markImapAfterApplied,
  recordEmail,
  saveImapCheckpoint,
  type ImapCheckpoint,
} from '../../infra/db/repositories/emails.repository.js';
import { describeError, PostroomError } from '../../infra/errors.js';
import type { Logger } from '../../infra/logger.js';
import { imapEmailsTotal, imapMessageFailuresTotal } from './imap-metrics.js';
import type { ImapAfter } from './imap-options.js';
import { downloadAndParse, headersOnly, type IngestDeps } from './message-ingest.js';
import type { ParsedEmail } from '../../infra/mail/parsed-email.js';
import { createStagedBlobStore, type StagedBlobStore } from './staged-blobs.js';

/** Failed attempts after which a message is recorded from its headers only (never dropped). */
export const MAX_MESSAGE_ATTEMPTS = 3;
/** UIDs whose size and date are fetched per FETCH command. */
const META_BATCH = 200;
/** Committed emails after which the checkpoint and IMAP_AFTER are applied (at the latest; also at the end of a sync). */
const FINALIZE_EVERY = 50;
/** Age (ms) of the oldest committed but unfinalized email after which they are applied anyway. */
const FINALIZE_AFTER_MS = 1_000;
/**
 * Largest message (RFC822.SIZE) downloaded ahead while the previous one is recorded: a large one waits
 * its turn, so two large messages never stream at once (memory) and stop() never waits for a second one.
 */
const LOOKAHEAD_MAX_BYTES = 1024 * 1024;

/** Test-only fault injection: `afterRecord` runs right after an email is committed, before the checkpoint and IMAP_AFTER. */
export interface ImapPollerHooks {
  afterRecord?: (info: { uid: number; emailId: string; created: boolean }) => void | Promise<void>;
}

/** What the mailbox sync needs. */
export interface MailboxSyncDeps {
  db: Db;
  blobs: BlobStore;
  log: Logger;
  account: string;
  mailbox: string;
  after: ImapAfter;
  /**
   * `IMAP_START`: what the very first sync of the mailbox (no checkpoint yet) takes. `all`: every mail
   * in it; `new`: none of them, only mail that arrives afterwards.
   */
  start: 'all' | 'new';
  limits: IngestDeps['limits'];
  hooks?: ImapPollerHooks | undefined;
  /** True once stop() was called: the sync ends after the message in hand. */
  stopping: () => boolean;
}

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'PROTOCOL_CONNECTION_LOST',
  'NoConnection',
]);

/** True for failures that say nothing about the message itself (network, lock waits, our retryable errors). */
function isTransient(err: unknown): boolean {
  if (err instanceof PostroomError) return err.retryable;
  const e = err as { code?: unknown; errno?: unknown; fatal?: unknown } | null;
  return TRANSIENT_CODES.has(String(e?.code)) || e?.fatal === true || e?.errno === 1205 || e?.errno === 1213;
}

/** A compact IMAP UID set of distinct UIDs (`3:7,9,12:13`). */
export function uidSet(uids: readonly number[]): string {
  const sorted = [...new Set(uids)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j += 1;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}:${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** A message downloaded and parsed, its small blobs held back for the email's transaction. */
interface Prepared {
  meta: FetchMessageObject;
  /** Null when the message vanished (expunged by another client) before it could be read. */
  parsed: ParsedEmail | null;
  result: 'created' | 'oversize' | 'fallback';
  blobs: StagedBlobStore;
}

/** An email committed for a UID, whose checkpoint and IMAP_AFTER are still to apply. */
interface Committed {
  uid: number;
  emailId: string;
}

/**
 * Brings one mailbox's emails up to date over one connection, in UID order. Each message is recorded
 * in one transaction (its small attachment blobs included); the next message (up to 1 MiB) is downloaded and parsed
 * while the current one is recorded. The checkpoint and IMAP_AFTER follow per group of committed
 * emails (one checkpoint write, one UID STORE or MOVE of the UID set, one UPDATE), never past a
 * message that is not committed: a failure stops the sync at that message, the emails committed
 * before it are finalized, then the failure is raised. A crash between a commit and its IMAP_AFTER is
 * repaired at the next start ({@link applyPending}); one before the checkpoint write only means those
 * messages are read again and found to be duplicates. Holds per-UID failure counts across reconnects
 * so a message that keeps failing is recorded from its headers instead of blocking the mailbox.
 */
export function createMailboxSync(deps: MailboxSyncDeps) {
  const { db, log, account, mailbox, after } = deps;
  const failures = new Map<number, { count: number; reason: string }>();
  const folders = new Set<string>();
  let checkpoint: ImapCheckpoint | null = null;

  /** Applies IMAP_AFTER to committed emails: one IMAP command for the whole UID set, one transaction. */
  async function applyAfter(client: ImapFlow, done: readonly Committed[]): Promise<void> {
    if (done.length === 0) return;
    const set = uidSet(done.map((d) => d.uid));
    let action = 'none';
    if (after.kind === 'seen') {
      await client.messageFlagsAdd(set, ['\\Seen'], { uid: true });
      action = 'seen';
    } else if (after.kind === 'move') {
      if (!folders.has(after.folder)) {
        const created = await client.mailboxCreate(after.folder);
        if (created.created) log.info({ folder: after.folder }, 'created the IMAP_AFTER folder');
        folders.add(after.folder);
      }
      await client.messageMove(set, after.folder, { uid: true });
      action = `moved to ${after.folder}`;
    }
    await markImapAfterApplied(
      db,
      done.map((d) => d.emailId),
      action,
    );
  }

  /** Applies IMAP_AFTER to emails committed before a crash that came before their flag update. */
  async function applyPending(client: ImapFlow): Promise<number> {
    const uidValidity = String(client.mailbox ? client.mailbox.uidValidity : '');
    const pending = await listPendingImapAfter(db, mailbox, uidValidity);
    for (let i = 0; i < pending.length; i += FINALIZE_EVERY)
      await applyAfter(client, pending.slice(i, i + FINALIZE_EVERY));
    if (pending.length > 0)
      log.info({ count: pending.length }, 'applied IMAP_AFTER left over from an earlier run');
    return pending.length;
  }

  /** Downloads and parses one message (or reads its headers only); writes nothing to the database. */
  async function prepare(client: ImapFlow, meta: FetchMessageObject): Promise<Prepared> {
    const uid = meta.uid;
    const size = meta.size ?? 0;
    const failed = failures.get(uid);
    let blobs = createStagedBlobStore(deps.blobs);
    const ingestDeps: IngestDeps = { blobs, log, limits: deps.limits };
    let parsed: ParsedEmail | null;
    let result: Prepared['result'] = 'created';
    if (size > deps.limits.messageMaxBytes) {
      result = 'oversize';
      const warning = `Message of ${size} bytes is over the ${deps.limits.messageMaxBytes}-byte message bound: recorded from its headers only, body and attachments not downloaded`;
      parsed = await headersOnly(client, uid, size, warning, ingestDeps);
    } else if (failed && failed.count >= MAX_MESSAGE_ATTEMPTS) {
      result = 'fallback';
      const warning = `Message could not be processed after ${failed.count} attempts (${failed.reason}): recorded from its headers only`;
      parsed = await headersOnly(client, uid, size, warning, ingestDeps);
    } else {
      try {
        parsed = await downloadAndParse(client, uid, ingestDeps);
      } catch (err) {
        // RFC822.SIZE understated the message: the parser stopped at the bound.
        if (!(err instanceof PostroomError) || err.code !== 'MAIL.TOO_LARGE') throw err;
        result = 'oversize';
        const warning = `Message is larger than the ${deps.limits.messageMaxBytes}-byte message bound (the server announced ${size} bytes): recorded from its headers only, body and attachments not kept`;
        // A fresh store: blobs held back from the abandoned parse are referenced by nothing.
        blobs = createStagedBlobStore(deps.blobs);
        parsed = await headersOnly(client, uid, size, warning, { ...ingestDeps, blobs });
      }
    }
    return { meta, parsed, result, blobs };
  }

  /** Records one prepared message (one transaction); null when it had vanished. */
  async function record(prepared: Prepared, uidValidity: string): Promise<Committed | null> {
    const { meta, parsed, blobs } = prepared;
    const uid = meta.uid;
    let result: Prepared['result'] | 'duplicate' = prepared.result;
    if (!parsed) {
      log.warn(
        { uid },
        'IMAP message vanished before it could be read (expunged by another client); skipped',
      );
      return null;
    }
    if (result !== 'created')
      log.warn({ uid, size: meta.size ?? 0, result }, 'IMAP message recorded from its headers only');
    const receivedAt = meta.internalDate ? new Date(meta.internalDate) : (parsed.date ?? new Date());
    const recorded = await recordEmail(
      db,
      { source: 'imap', mailbox, uid, uidValidity, parsed, receivedAt },
      { withinTransaction: (trx) => blobs.writeStaged(trx) },
    );
    if (!recorded.created && result === 'created') result = 'duplicate';
    imapEmailsTotal.inc({ result });
    failures.delete(uid);
    log.info(
      {
        uid,
        correlationId: recorded.emailId,
        created: recorded.created,
        attachments: parsed.attachments.length,
      },
      'IMAP message recorded',
    );
    await deps.hooks?.afterRecord?.({ uid, emailId: recorded.emailId, created: recorded.created });
    return { uid, emailId: recorded.emailId };
  }

  /** Counts a failure against the message unless the IMAP connection or the database is at fault. */
  async function noteFailure(client: ImapFlow, uid: number, err: unknown): Promise<void> {
    imapMessageFailuresTotal.inc();
    if (!client.usable || isTransient(err)) return;
    const dbUp = await sql`select 1`.execute(db).then(
      () => true,
      () => false,
    );
    if (!dbUp) return;
    const count = (failures.get(uid)?.count ?? 0) + 1;
    failures.set(uid, { count, reason: describeError(err).slice(0, 300) });
    log.warn({ err, uid, attempt: count }, 'processing an IMAP message failed');
  }

  /**
   * Fetches and records every message above the checkpoint. A new UIDVALIDITY resets the checkpoint
   * to 0: the mailbox is scanned again and the Message-ID deduplicates what was already recorded.
   * Returns the number of messages handled.
   */
  async function sync(client: ImapFlow): Promise<number> {
    if (!client.mailbox) throw new Error(`IMAP mailbox ${mailbox} is not selected`);
    const uidValidity = String(client.mailbox.uidValidity);
    checkpoint = await getImapCheckpoint(db, account, mailbox);
    if (!checkpoint && deps.start === 'new') {
      // The first start with IMAP_START=new: the mail already there is left alone. Only this once: a
      // later UIDVALIDITY change scans everything again (below), so nothing arriving meanwhile is lost.
      const uidNext = Number(client.mailbox.uidNext ?? 1);
      checkpoint = { uidValidity, lastUid: Math.max(0, uidNext - 1) };
      await saveImapCheckpoint(db, account, mailbox, checkpoint);
      log.info(
        { mailbox, existing: client.mailbox.exists, lastUid: checkpoint.lastUid },
        'IMAP_START=new: mail already in the mailbox is left alone; recording mail that arrives from now on',
      );
    }
    if (!checkpoint || checkpoint.uidValidity !== uidValidity) {
      if (checkpoint)
        log.warn(
          { mailbox, was: checkpoint.uidValidity, now: uidValidity },
          'UIDVALIDITY changed: scanning the mailbox again (duplicates are skipped by Message-ID)',
        );
      checkpoint = { uidValidity, lastUid: 0 };
      await saveImapCheckpoint(db, account, mailbox, checkpoint);
      failures.clear();
    }
    const from = checkpoint.lastUid + 1;
    // `N:*` also matches the highest UID when N is above it (RFC 3501), hence the filter.
    const found = await client.search({ uid: `${from}:*` }, { uid: true });
    if (!found) throw new Error(`IMAP UID SEARCH ${from}:* in ${mailbox} failed`);
    const uids = found.filter((u) => u >= from).sort((a, b) => a - b);

    // Committed in UID order with nothing uncommitted below them: the checkpoint may pass them.
    const committed: Committed[] = [];
    let oldest = 0;
    const finalize = async (): Promise<void> => {
      if (committed.length === 0) return;
      const group = committed.splice(0);
      checkpoint = { uidValidity, lastUid: group.at(-1)!.uid };
      await saveImapCheckpoint(db, account, mailbox, checkpoint);
      await applyAfter(client, group);
    };
    const due = () =>
      committed.length >= FINALIZE_EVERY ||
      (committed.length > 0 && Date.now() - oldest >= FINALIZE_AFTER_MS);

    let handled = 0;
    // The next message's download and parse, started while the current one is recorded.
    let ahead: Promise<Prepared> | null = null;
    const start = (meta: FetchMessageObject): Promise<Prepared> => {
      const p = prepare(client, meta);
      p.catch(() => undefined); // raised when its turn comes
      return p;
    };
    try {
      for (let i = 0; i < uids.length && !deps.stopping(); i += META_BATCH) {
        const batch = uids.slice(i, i + META_BATCH);
        // Collected in full before any other command: issuing one inside a FETCH iteration deadlocks imapflow.
        const metas = (
          await client.fetchAll(batch.join(','), { uid: true, size: true, internalDate: true }, { uid: true })
        )
          .filter((m) => m.uid >= from)
          .sort((a, b) => a.uid - b.uid);
        for (let j = 0; j < metas.length && !deps.stopping(); j++) {
          const meta = metas[j]!;
          try {
            const prepared = await (ahead ?? start(meta));
            ahead = null;
            const next = metas[j + 1];
            if (next && (next.size ?? 0) <= LOOKAHEAD_MAX_BYTES && !deps.stopping()) ahead = start(next);
            const done = await record(prepared, uidValidity);
            if (done) {
              if (committed.length === 0) oldest = Date.now();
              committed.push(done);
            }
          } catch (err) {
            await noteFailure(client, meta.uid, err);
            throw err;
          }
          handled += 1;
          if (due()) await finalize();
        }
        await finalize();
      }
    } catch (err) {
      // The next message may be mid-download: let it settle before any other IMAP command.
      await ahead?.catch(() => undefined);
      ahead = null;
      // Emails committed before the failure still get their checkpoint and IMAP_AFTER.
      await finalize().catch((finalizeErr: unknown) =>
        log.warn(
          { err: finalizeErr },
          'applying the checkpoint and IMAP_AFTER after a failure failed; the next sync repairs it',
        ),
      );
      throw err;
    } finally {
      await ahead?.catch(() => undefined);
    }
    await finalize();
    return handled;
  }

  return { sync, applyPending, checkpoint: () => checkpoint };
}

/** The mailbox sync of one poller. */
export type MailboxSync = ReturnType<typeof createMailboxSync>;
