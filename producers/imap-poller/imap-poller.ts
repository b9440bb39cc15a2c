import { ImapFlow } from 'imapflow';
import { backoffMs } from '../../infra/backoff.js';
import type { BlobStore } from '../../infra/blobs/blob-store.js';
import type { Db } from '../../infra/db/database.js';
import { describeError } from '../../infra/errors.js';
import type { Logger } from '../../infra/logger.js';
import {
  imapConnected,
  imapLastSyncSeconds,
  imapReconnectsTotal,
  imapWatchdogResyncsTotal,
} from './imap-metrics.js';
import {
  certificateProblem,
  imapAccount,
  imapClientOptions,
  messageMaxBytes,
  parseImapAfter,
  type ImapPollerConfig,
} from './imap-options.js';
import { createMailboxSync, type ImapPollerHooks } from './mailbox-sync.js';
import { createWakeup } from './wakeup.js';

export type { ImapPollerConfig } from './imap-options.js';
export type { ImapPollerHooks } from './mailbox-sync.js';

/** What the poller is doing. */
export type ImapPollerState = 'stopped' | 'connecting' | 'syncing' | 'idle' | 'polling' | 'backoff';

/** The poller's health, for /readyz and metrics. */
export interface ImapPollerHealth {
  /** Current activity; `idle` means waiting in IMAP IDLE, `polling` waiting for the next probe. */
  state: ImapPollerState;
  /** True while connected with the mailbox selected. */
  connected: boolean;
  /** True when connected and the last successful probe or sync is at most 2 poll periods + 30 s old. */
  ready: boolean;
  /** Whether the server offers IDLE (null before the first connection). */
  idleSupported: boolean | null;
  /** Last time the server answered a probe or a sync completed. */
  lastOkAt: Date | null;
  /** Last time a sync of the mailbox completed. */
  lastSyncAt: Date | null;
  /** The last connection or processing failure (`code: message`), null once a sync succeeded. */
  lastError: string | null;
  /** Sessions that failed in a row (reset by a successful sync). */
  consecutiveFailures: number;
  /** The watched mailbox. */
  mailbox: string;
  /** Its UIDVALIDITY and the highest committed UID, from the checkpoint. */
  uidValidity: string | null;
  lastUid: number | null;
}

/** What the poller needs; tuning values are for tests. */
export interface ImapPollerDeps {
  config: ImapPollerConfig;
  db: Db;
  blobs: BlobStore;
  log: Logger;
  /** Test-only fault injection. */
  hooks?: ImapPollerHooks;
  /** First reconnect delay in ms (default 1000), doubled per failure up to `maxBackoffMs` (default 60000). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

/** A running (or stoppable) IMAP poller. */
export interface ImapPoller {
  /** Starts the connection loop in the background; resolves at once. */
  start(): void;
  /** Finishes the message in hand (at most 15 s), logs out and stops reconnecting. */
  stop(): Promise<void>;
  /** The current health. */
  health(): ImapPollerHealth;
}

const withTimeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} got no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
};

/**
 * The IMAP poller: one connection to the mailbox, IDLE when the server offers it (imapflow's
 * auto-IDLE), and a watchdog probe (`STATUS UIDNEXT UIDVALIDITY`) every `IMAP_POLL_SECONDS` that also
 * serves as the poll when there is no IDLE. A probe that gets no answer, a closed connection or a
 * failure ends the session; a new client is made after a growing delay (imapflow never reconnects by
 * itself). New mail is processed by the mailbox sync (in UID order, the next message downloaded while
 * the current one is recorded; checkpoint and IMAP_AFTER per group of committed emails).
 */
export function createImapPoller(deps: ImapPollerDeps): ImapPoller {
  const { config, db } = deps;
  const log = deps.log.child({ module: 'imap-poller' });
  const mailbox = config.IMAP_MAILBOX;
  const pollMs = config.IMAP_POLL_SECONDS * 1000;
  const probeTimeoutMs = Math.min(Math.max(pollMs, 10_000), 60_000);
  const initialBackoff = deps.initialBackoffMs ?? 1_000;
  const maxBackoff = deps.maxBackoffMs ?? 60_000;
  const clientOptions = imapClientOptions(config, deps.log);
  // One signal per session (events of an old client cannot cut a wait short) and one for the backoff.
  let wake = createWakeup();
  let backoffWake = createWakeup();
  let stopping = false;
  let loop: Promise<void> | null = null;
  let current: ImapFlow | null = null;
  let dirty = false;
  let sawExists = false;
  const h: ImapPollerHealth = {
    state: 'stopped',
    connected: false,
    ready: false,
    idleSupported: null,
    lastOkAt: null,
    lastSyncAt: null,
    lastError: null,
    consecutiveFailures: 0,
    mailbox,
    uidValidity: null,
    lastUid: null,
  };
  const mailboxSync = createMailboxSync({
    db,
    blobs: deps.blobs,
    log,
    account: imapAccount(config),
    mailbox,
    after: parseImapAfter(config.IMAP_AFTER),
    start: config.IMAP_START,
    limits: {
      attachmentMaxBytes: config.ATTACHMENT_MAX_BYTES,
      messageMaxBytes: messageMaxBytes(config.ATTACHMENT_MAX_BYTES),
    },
    hooks: deps.hooks,
    stopping: () => stopping,
  });

  async function syncNow(client: ImapFlow): Promise<void> {
    h.state = 'syncing';
    dirty = false;
    const handled = await mailboxSync.sync(client);
    const cp = mailboxSync.checkpoint();
    h.uidValidity = cp?.uidValidity ?? null;
    h.lastUid = cp?.lastUid ?? null;
    h.lastSyncAt = h.lastOkAt = new Date();
    h.lastError = null;
    h.consecutiveFailures = 0;
    imapLastSyncSeconds.set(h.lastSyncAt.getTime() / 1000);
    if (handled > 0) log.debug({ handled }, 'IMAP sync done');
  }

  /** The watchdog: a STATUS probe; new UIDs, or a new UIDVALIDITY, mean a sync is due. */
  async function probe(client: ImapFlow, baseline: { uidNext: number }): Promise<void> {
    const st = await withTimeout(
      client.status(mailbox, { uidNext: true, uidValidity: true }),
      probeTimeoutMs,
      'IMAP STATUS probe',
    );
    h.lastOkAt = new Date();
    if (!st) throw new Error(`IMAP STATUS ${mailbox} failed`);
    if (st.uidValidity !== undefined && String(st.uidValidity) !== h.uidValidity) dirty = true;
    if (st.uidNext !== undefined && st.uidNext !== baseline.uidNext) {
      if (!sawExists && h.idleSupported) {
        imapWatchdogResyncsTotal.inc();
        log.warn(
          { was: baseline.uidNext, now: st.uidNext },
          'watchdog: UIDNEXT moved without an IDLE notification; resyncing',
        );
      }
      baseline.uidNext = st.uidNext;
      dirty = true;
    }
    sawExists = false;
  }

  async function session(): Promise<void> {
    h.state = 'connecting';
    const signal = createWakeup();
    wake = signal;
    const client = new ImapFlow(clientOptions);
    current = client;
    // imapflow emits 'error' at most once per connection, then 'close'; the loop reconnects.
    client.on('error', (err: Error) => log.warn({ err }, 'IMAP connection error'));
    client.on('close', () => signal.notify());
    client.on('exists', (ev: { count: number; prevCount: number }) => {
      if (ev.count <= ev.prevCount) return;
      sawExists = true;
      dirty = true;
      signal.notify();
    });
    try {
      await client.connect();
      const opened = await client.mailboxOpen(mailbox);
      h.connected = true;
      imapConnected.set(1);
      h.idleSupported = client.capabilities.has('IDLE');
      log.info(
        { mailbox, idle: h.idleSupported, uidValidity: String(opened.uidValidity) },
        'IMAP mailbox opened',
      );
      const baseline = { uidNext: opened.uidNext };
      await mailboxSync.applyPending(client);
      await syncNow(client);
      while (!stopping) {
        if (!client.usable) throw new Error('IMAP connection closed');
        if (dirty) {
          await syncNow(client);
          continue;
        }
        h.state = h.idleSupported ? 'idle' : 'polling';
        const woke = await signal.wait(pollMs);
        if (stopping || !client.usable) continue;
        if (!woke) await probe(client, baseline);
      }
    } finally {
      h.connected = false;
      imapConnected.set(0);
      current = null;
      // A clean LOGOUT only on a healthy stop; a failed session's connection may be dead, so it is just closed.
      if (stopping && client.usable)
        await withTimeout(client.logout(), 5_000, 'IMAP LOGOUT').catch((err: unknown) => {
          log.debug({ err }, 'IMAP LOGOUT failed; closing the connection');
          client.close();
        });
      else client.close();
    }
  }

  async function run(): Promise<void> {
    while (!stopping) {
      try {
        await session();
      } catch (err) {
        if (stopping) break;
        h.consecutiveFailures += 1;
        imapReconnectsTotal.inc();
        // A refused server certificate says so in words, at error level (and in /readyz): it is a
        // configuration problem an operator must act on, which waiting does not heal.
        const certificate = certificateProblem(err, config);
        h.lastError = certificate ?? describeError(err);
        if (certificate) log.error({ err, attempt: h.consecutiveFailures }, certificate);
        else log.warn({ err, attempt: h.consecutiveFailures }, 'IMAP session failed; reconnecting');
      }
      if (stopping) break;
      h.state = 'backoff';
      await backoffWake.wait(
        backoffMs({ baseMs: initialBackoff, maxMs: maxBackoff, jitter: 0.4 }, h.consecutiveFailures - 1),
      );
    }
    h.state = 'stopped';
  }

  return {
    start() {
      if (loop) return;
      stopping = false;
      backoffWake = createWakeup();
      loop = run().catch((err: unknown) => log.error({ err }, 'IMAP poller loop crashed'));
    },
    async stop() {
      if (!loop) return;
      stopping = true;
      wake.notify();
      backoffWake.notify();
      const done = loop;
      const finished = await withTimeout(done, 15_000, 'IMAP poller stop').then(
        () => true,
        () => false,
      );
      if (!finished) {
        log.warn('IMAP poller did not stop within 15 s; closing its connection');
        current?.close();
        await done;
      }
      loop = null;
    },
    health() {
      const fresh = h.lastOkAt !== null && Date.now() - h.lastOkAt.getTime() <= 2 * pollMs + 30_000;
      return { ...h, ready: h.connected && fresh };
    },
  };
}
