import { afterAll, afterEach, beforeAll } from 'vitest';
import type { BlobStore } from '../infra/blobs/blob-store.js';
import { createMysqlBlobStore } from '../infra/blobs/mysql-blob-store.js';
import { loadConfig } from '../infra/config.js';
import { getImapCheckpoint, messageIdHash } from '../infra/db/repositories/emails.repository.js';
import { imapAccount } from '../producers/imap-poller/imap-options.js';
import {
  createImapPoller,
  type ImapPoller,
  type ImapPollerDeps,
} from '../producers/imap-poller/imap-poller.js';
import { testLogger } from './broker.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { imapEnv, startDovecot, type DovecotServer } from './dovecot.js';

/** What an IMAP poller test file works with; the fields are set in `beforeAll`. */
export interface ImapPollerHarness {
  dove: DovecotServer;
  tdb: TestDatabase;
  blobs: BlobStore;
  /** Starts a poller on `mailbox` (created first) with IMAP_* overrides; stopped after each test. */
  startPoller(
    mailbox: string,
    env?: Record<string, string>,
    extra?: Partial<ImapPollerDeps>,
  ): Promise<ImapPoller>;
  /** Stops a poller before the test ends. */
  stopPoller(poller: ImapPoller): Promise<void>;
  emailsOf(mailbox: string): ReturnType<typeof listEmails>;
  emailByMessageId(id: string): ReturnType<typeof findEmail>;
  checkpoint(mailbox: string): ReturnType<typeof getImapCheckpoint>;
}

const listEmails = (t: TestDatabase, mailbox: string) =>
  t.db.selectFrom('emails').selectAll().where('mailbox', '=', mailbox).orderBy('uid').execute();
const findEmail = (t: TestDatabase, id: string) =>
  t.db.selectFrom('emails').selectAll().where('message_id_hash', '=', messageIdHash(id)).executeTakeFirst();

/**
 * Registers the hooks of an IMAP poller test file: one Dovecot and one database for the file, every
 * poller a test started stopped after it.
 */
export function imapPollerHarness(label: string): ImapPollerHarness {
  const running: ImapPoller[] = [];
  const h = {
    running,
    async startPoller(
      mailbox: string,
      env: Record<string, string> = {},
      extra: Partial<ImapPollerDeps> = {},
    ) {
      await h.dove.createMailbox(mailbox);
      const config = loadConfig(imapEnv(h.dove, { IMAP_MAILBOX: mailbox, ...env }));
      const poller = createImapPoller({
        config,
        db: h.tdb.db,
        blobs: h.blobs,
        log: testLogger(),
        initialBackoffMs: 100,
        ...extra,
      });
      running.push(poller);
      poller.start();
      return poller;
    },
    async stopPoller(poller: ImapPoller) {
      running.splice(running.indexOf(poller), 1);
      await poller.stop();
    },
    emailsOf: (mailbox: string) => listEmails(h.tdb, mailbox),
    emailByMessageId: (id: string) => findEmail(h.tdb, id),
    checkpoint: (mailbox: string) =>
      getImapCheckpoint(
        h.tdb.db,
        imapAccount({ IMAP_USER: h.dove.user, IMAP_HOST: h.dove.host } as never),
        mailbox,
      ),
  } as ImapPollerHarness & { running: ImapPoller[] };
  beforeAll(async () => {
    h.dove = await startDovecot();
    h.tdb = await createTestDatabase(label);
    h.blobs = createMysqlBlobStore(h.tdb.db);
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((p) => p.stop()));
  });
  afterAll(async () => {
    await h.dove?.stop();
    await h.tdb?.drop();
  });
  return h;
}
