import { Readable } from 'node:stream';
import type { FetchMessageObject, ImapFlow } from 'imapflow';
import { sql } from 'kysely';
import type { BlobStore } from '../../infra/blobs/blob-store.js';
import type { Db } from '../../infra/db/database.js';
import {
  getImapCheckpoint,
  listPendingImapAfter,
  markImapAfterApplied,
  recordEmail,
  recordEmails,
  saveImapCheckpoint,
  type ImapCheckpoint,
} from '../../infra/db/repositories/emails.repository.js';
import { describeError, PostroomError } from '../../infra/errors.js';
import type { Logger } from '../../infra/logger.js';
import { imapEmailsTotal, imapMessageFailuresTotal } from './imap-metrics.js';
import type { ImapAfter } from './imap-options.js';
import { downloadAndParse, headersOnly, type IngestDeps } from './message-ingest.js';
import { parseMessage } from '../../infra/mail/mime-parser.js';
import type { ParsedEmail } from '../../infra/mail/parsed-email.js';
import { createStagedBlobStore, writeStagedTogether, type StagedBlobStore } from './staged-blobs.js';

/** Failed attempts after which a message is recorded from its headers only (never dropped). */
export const MAX_MESSAGE_ATTEMPTS = 3;
/** UIDs whose size and date are fetched per FETCH command. */
const META_BATCH = 200;
/** Committed emails after which the checkpoint and IMAP_AFTER are applied (at the latest; also at the end of a sync). */
const FINALIZE_EVERY = 50;
/** Age (ms) of the oldest committed but unfinalized email after which they are applied anyway. */
const FINALIZE_AFTER_MS = 1_000;
/**
 * Largest message (RFC822.SIZE) fetched whole with its neighbours in one FETCH and recorded with them
 * in one transaction; a larger one is streamed and recorded alone.
 */
export const BATCH_MESSAGE_MAX_BYTES = 256 * 1024;
/** Most messages per batch (one FETCH, one transaction). */
export const BATCH_MAX_MESSAGES = FINALIZE_EVERY;
/**
 * Most bytes (RFC822.SIZE) per batch. At most two batches are in memory at once (one being recorded,
 * the next being fetched and parsed), so a backlog of any size drains in a few MiB.
 */
export const BATCH_MAX_BYTES = 4 * 1024 * 1024;

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

/** Messages of one batch, prepared in UID order; `failure` stops the sync after the ones before it. */
interface PreparedUnit {
  prepared: Prepared[];
  failure: { uid: number; err: unknown } | null;
}

/** How recording a batch went: its emails committed, or nothing of it written. */
type RecordOutcome = { ok: true; done: Committed[] } | { ok: false; unit: Prepared[]; err: unknown };

/**
 * Brings one mailbox's emails up to date over one connection, in UID order, in batches: consecutive
 * small messages (up to {@link BATCH_MAX_MESSAGES} of at most {@link BATCH_MESSAGE_MAX_BYTES}, together
 * at most {@link BATCH_MAX_BYTES}) are fetched whole in one FETCH, parsed, and recorded in one
 * transaction (one multi-row INSERT per table, their small attachment blobs included); a larger
 * message is streamed and recorded alone. The next batch is fetched and parsed while the current one
 * is recorded. A batch that fails to record is recorded again one message at a time, so a failing
 * message is retried or recorded from its headers alone, never with its neighbours. The checkpoint
 * and IMAP_AFTER follow per group of committed
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

  /** The received date of a prepared message: IMAP internal date, else its Date header, else now. */
  const receivedAt = (p: Prepared): Date =>
    p.meta.internalDate ? new Date(p.meta.internalDate) : (p.parsed?.date ?? new Date());

  /** Warns about a message that vanished or is recorded from its headers; false when it vanished. */
  function announce(p: Prepared): boolean {
    if (!p.parsed) {
      log.warn(
        { uid: p.meta.uid },
        'IMAP message vanished before it could be read (expunged by another client); skipped',
      );
      return false;
    }
    if (p.result !== 'created')
      log.warn(
        { uid: p.meta.uid, size: p.meta.size ?? 0, result: p.result },
        'IMAP message recorded from its headers only',
      );
    return true;
  }

  /** Counts, logs (one info line per mail) and runs the test hook for a recorded message. */
  async function recorded(p: Prepared, answer: { emailId: string; created: boolean }): Promise<Committed> {
    const uid = p.meta.uid;
    const result = !answer.created && p.result === 'created' ? 'duplicate' : p.result;
    imapEmailsTotal.inc({ result });
    failures.delete(uid);
    log.info(
      {
        uid,
        correlationId: answer.emailId,
        created: answer.created,
        attachments: p.parsed?.attachments.length ?? 0,
      },
      'IMAP message recorded',
    );
    await deps.hooks?.afterRecord?.({ uid, emailId: answer.emailId, created: answer.created });
    return { uid, emailId: answer.emailId };
  }

  /** Records one prepared message (one transaction); null when it had vanished. */
  async function record(prepared: Prepared, uidValidity: string): Promise<Committed | null> {
    if (!announce(prepared)) return null;
    const answer = await recordEmail(
      db,
      {
        source: 'imap',
        mailbox,
        uid: prepared.meta.uid,
        uidValidity,
        parsed: prepared.parsed!,
        receivedAt: receivedAt(prepared),
      },
      { withinTransaction: (trx) => prepared.blobs.writeStaged(trx) },
    );
    return recorded(prepared, answer);
  }

  /** Records prepared messages in one transaction (one message: {@link record}); throws when nothing was written. */
  async function recordBatch(unit: readonly Prepared[], uidValidity: string): Promise<Committed[]> {
    if (unit.length === 1) {
      const one = await record(unit[0]!, uidValidity);
      return one ? [one] : [];
    }
    const present = unit.filter(announce);
    const answers = await recordEmails(
      db,
      present.map((p) => ({
        source: 'imap' as const,
        mailbox,
        uid: p.meta.uid,
        uidValidity,
        parsed: p.parsed!,
        receivedAt: receivedAt(p),
      })),
      {
        withinTransaction: (trx, created) =>
          writeStagedTogether(
            trx,
            created.map((i) => present[i]!.blobs),
          ),
      },
    );
    const done: Committed[] = [];
    for (const [i, p] of present.entries()) done.push(await recorded(p, answers[i]!));
    return done;
  }

  /** Records a batch in the background; never rejects (see {@link RecordOutcome}). */
  const recordInBackground = (unit: Prepared[], uidValidity: string): Promise<RecordOutcome> =>
    recordBatch(unit, uidValidity).then(
      (done): RecordOutcome => ({ ok: true, done }),
      (err: unknown): RecordOutcome => ({ ok: false, unit, err }),
    );

  /** Fetches whole and parses a batch of small messages (a single message: {@link prepare}). */
  async function prepareUnit(client: ImapFlow, metas: readonly FetchMessageObject[]): Promise<PreparedUnit> {
    if (metas.length === 1) {
      const meta = metas[0]!;
      try {
        return { prepared: [await prepare(client, meta)], failure: null };
      } catch (err) {
        return { prepared: [], failure: { uid: meta.uid, err } };
      }
    }
    const prepared: Prepared[] = [];
    let sources: Map<number, Buffer>;
    try {
      // Collected in full before any other command: issuing one inside a FETCH iteration deadlocks imapflow.
      const fetched = await client.fetchAll(
        uidSet(metas.map((m) => m.uid)),
        { uid: true, source: true },
        { uid: true },
      );
      sources = new Map(fetched.flatMap((m) => (m.source ? [[m.uid, m.source] as const] : [])));
    } catch (err) {
      return { prepared: [], failure: { uid: metas[0]!.uid, err } };
    }
    // Parsed side by side: the bytes are all here, and a parse waits on the event loop between its
    // stream steps, where the rest of the process runs; one after the other, the parses of a batch of
    // 50 took 150-200 ms in a backlog for about 30 ms of CPU.
    const parses = metas.map(async (meta): Promise<Prepared | null> => {
      const source = sources.get(meta.uid);
      sources.delete(meta.uid);
      const blobs = createStagedBlobStore(deps.blobs);
      if (!source) return { meta, parsed: null, result: 'created', blobs };
      try {
        const parsed = await parseMessage(Readable.from([source]), { blobs }, deps.limits);
        return { meta, parsed, result: 'created', blobs };
      } catch {
        return null;
      }
    });
    for (const [i, p] of (await Promise.all(parses)).entries()) {
      if (p) {
        prepared.push(p);
        continue;
      }
      // A bound reached or a store failure: the message goes the single way, which knows each case
      // and counts its failures (one at a time, in UID order).
      const meta = metas[i]!;
      try {
        prepared.push(await prepare(client, meta));
      } catch (err) {
        return { prepared, failure: { uid: meta.uid, err } };
      }
    }
    return { prepared, failure: null };
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

    const push = (done: readonly Committed[]) => {
      for (const d of done) {
        if (committed.length === 0) oldest = Date.now();
        committed.push(d);
      }
    };
    /** Records a failed batch again one message at a time; throws at the first message that fails. */
    const oneByOne = async (unit: readonly Prepared[]): Promise<void> => {
      for (const p of unit) {
        // What is committed is finalized before the next attempt: a failing message never holds back
        // the checkpoint and IMAP_AFTER of the ones before it.
        await finalize();
        try {
          const done = await record(p, uidValidity);
          if (done) push([done]);
        } catch (err) {
          await noteFailure(client, p.meta.uid, err);
          throw err;
        }
      }
    };
    // The batch being recorded while the next one is fetched and parsed.
    let recording: Promise<RecordOutcome> | null = null;
    const settle = async (): Promise<void> => {
      if (!recording) return;
      const outcome = await recording;
      recording = null;
      if (outcome.ok) push(outcome.done);
      else if (outcome.unit.length === 1) {
        await noteFailure(client, outcome.unit[0]!.meta.uid, outcome.err);
        throw outcome.err;
      } else {
        log.debug(
          { err: outcome.err, count: outcome.unit.length },
          'a batch failed to record; recording it one message at a time',
        );
        await oneByOne(outcome.unit);
      }
      if (due()) await finalize();
    };
    /** The next batch from `metas[j]`: consecutive small messages, or one larger one. */
    const takeUnit = (metas: readonly FetchMessageObject[], j: number): FetchMessageObject[] => {
      const small = (m: FetchMessageObject) =>
        (m.size ?? 0) <= BATCH_MESSAGE_MAX_BYTES && !failures.has(m.uid);
      let k = j;
      let bytes = 0;
      while (
        k < metas.length &&
        k - j < BATCH_MAX_MESSAGES &&
        small(metas[k]!) &&
        (k === j || bytes + (metas[k]!.size ?? 0) <= BATCH_MAX_BYTES)
      ) {
        bytes += metas[k]!.size ?? 0;
        k += 1;
      }
      return metas.slice(j, Math.max(k, j + 1));
    };

    let handled = 0;
    try {
      for (let i = 0; i < uids.length && !deps.stopping(); i += META_BATCH) {
        const batch = uids.slice(i, i + META_BATCH);
        // Collected in full before any other command: issuing one inside a FETCH iteration deadlocks imapflow.
        const metas = (
          await client.fetchAll(batch.join(','), { uid: true, size: true, internalDate: true }, { uid: true })
        )
          .filter((m) => m.uid >= from)
          .sort((a, b) => a.uid - b.uid);
        for (let j = 0; j < metas.length && !deps.stopping();) {
          const unit = takeUnit(metas, j);
          j += unit.length;
          const { prepared, failure } = await prepareUnit(client, unit);
          await settle();
          if (prepared.length > 0) recording = recordInBackground(prepared, uidValidity);
          handled += prepared.length;
          if (failure) {
            await settle();
            await noteFailure(client, failure.uid, failure.err);
            throw failure.err;
          }
        }
        await settle();
        await finalize();
      }
    } catch (err) {
      // A batch still being recorded: what it committed gets its checkpoint and IMAP_AFTER too.
      const outcome: RecordOutcome | null = await (recording ?? Promise.resolve(null));
      recording = null;
      if (outcome?.ok) push(outcome.done);
      // Emails committed before the failure still get their checkpoint and IMAP_AFTER.
      await finalize().catch((finalizeErr: unknown) =>
        log.warn(
          { err: finalizeErr },
          'applying the checkpoint and IMAP_AFTER after a failure failed; the next sync repairs it',
        ),
      );
      throw err;
    }
    await finalize();
    return handled;
  }

  return { sync, applyPending, checkpoint: () => checkpoint };
}

/** The mailbox sync of one poller. */
export type MailboxSync = ReturnType<typeof createMailboxSync>;
