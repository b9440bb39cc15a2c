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
import type { ParsedEmail } from './parsed-email.js';

/** Failed attempts after which a message is recorded from its headers only (never dropped). */
export const MAX_MESSAGE_ATTEMPTS = 3;
/** UIDs whose size and date are fetched per FETCH command. */
const META_BATCH = 200;

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

/**
 * Brings one mailbox's emails up to date over one connection, one message at a time in UID order:
 * record (one transaction), advance the checkpoint, then apply IMAP_AFTER. Holds per-UID failure
 * counts across reconnects so a message that keeps failing is recorded from its headers instead of
 * blocking the mailbox.
 */
export function createMailboxSync(deps: MailboxSyncDeps) {
  const { db, log, account, mailbox, after } = deps;
  const failures = new Map<number, { count: number; reason: string }>();
  const folders = new Set<string>();
  let checkpoint: ImapCheckpoint | null = null;

  async function applyAfter(client: ImapFlow, uid: number, emailId: string): Promise<void> {
    let action = 'none';
    if (after.kind === 'seen') {
      await client.messageFlagsAdd(String(uid), ['\\Seen'], { uid: true });
      action = 'seen';
    } else if (after.kind === 'move') {
      if (!folders.has(after.folder)) {
        const created = await client.mailboxCreate(after.folder);
        if (created.created) log.info({ folder: after.folder }, 'created the IMAP_AFTER folder');
        folders.add(after.folder);
      }
      await client.messageMove(String(uid), after.folder, { uid: true });
      action = `moved to ${after.folder}`;
    }
    await markImapAfterApplied(db, emailId, action);
  }

  /** Applies IMAP_AFTER to emails committed before a crash that came before their flag update. */
  async function applyPending(client: ImapFlow): Promise<number> {
    const uidValidity = String(client.mailbox ? client.mailbox.uidValidity : '');
    const pending = await listPendingImapAfter(db, mailbox, uidValidity);
    for (const p of pending) await applyAfter(client, p.uid, p.emailId);
    if (pending.length > 0)
      log.info({ count: pending.length }, 'applied IMAP_AFTER left over from an earlier run');
    return pending.length;
  }

  async function ingest(client: ImapFlow, meta: FetchMessageObject, uidValidity: string): Promise<void> {
    const uid = meta.uid;
    const size = meta.size ?? 0;
    const failed = failures.get(uid);
    let parsed: ParsedEmail | null;
    let result: 'created' | 'duplicate' | 'oversize' | 'fallback' = 'created';
    if (size > deps.limits.messageMaxBytes) {
      result = 'oversize';
      const warning = `Message of ${size} bytes is over the ${deps.limits.messageMaxBytes}-byte message bound: recorded from its headers only, body and attachments not downloaded`;
      parsed = await headersOnly(client, uid, size, warning, deps);
    } else if (failed && failed.count >= MAX_MESSAGE_ATTEMPTS) {
      result = 'fallback';
      const warning = `Message could not be processed after ${failed.count} attempts (${failed.reason}): recorded from its headers only`;
      parsed = await headersOnly(client, uid, size, warning, deps);
    } else {
      try {
        parsed = await downloadAndParse(client, uid, deps);
      } catch (err) {
        // RFC822.SIZE understated the message: the parser stopped at the bound.
        if (!(err instanceof PostroomError) || err.code !== 'MAIL.TOO_LARGE') throw err;
        result = 'oversize';
        const warning = `Message is larger than the ${deps.limits.messageMaxBytes}-byte message bound (the server announced ${size} bytes): recorded from its headers only, body and attachments not kept`;
        parsed = await headersOnly(client, uid, size, warning, deps);
      }
    }
    if (!parsed) {
      log.warn(
        { uid },
        'IMAP message vanished before it could be read (expunged by another client); skipped',
      );
      return;
    }
    if (result !== 'created') log.warn({ uid, size, result }, 'IMAP message recorded from its headers only');
    const receivedAt = meta.internalDate ? new Date(meta.internalDate) : (parsed.date ?? new Date());
    const recorded = await recordEmail(db, { source: 'imap', mailbox, uid, uidValidity, parsed, receivedAt });
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
    checkpoint = { uidValidity, lastUid: uid };
    await saveImapCheckpoint(db, account, mailbox, checkpoint);
    await applyAfter(client, uid, recorded.emailId);
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
    let handled = 0;
    for (let i = 0; i < uids.length && !deps.stopping(); i += META_BATCH) {
      const batch = uids.slice(i, i + META_BATCH);
      // Collected in full before any other command: issuing one inside a FETCH iteration deadlocks imapflow.
      const metas = await client.fetchAll(
        batch.join(','),
        { uid: true, size: true, internalDate: true },
        { uid: true },
      );
      metas.sort((a, b) => a.uid - b.uid);
      for (const meta of metas) {
        if (deps.stopping()) break;
        if (meta.uid < from) continue;
        try {
          await ingest(client, meta, uidValidity);
        } catch (err) {
          await noteFailure(client, meta.uid, err);
          throw err;
        }
        handled += 1;
      }
    }
    return handled;
  }

  return { sync, applyPending, checkpoint: () => checkpoint };
}

/** The mailbox sync of one poller. */
export type MailboxSync = ReturnType<typeof createMailboxSync>;
