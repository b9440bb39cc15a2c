import { appendFile, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createMysqlBlobStore } from '../../infra/blobs/mysql-blob-store.js';
import { testLogger, waitFor } from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { nestedMultipartMessage, noMessageIdMessage, plainTextMessage } from '../../test/mail-corpus.js';
import { createTestVhost, spawnPostroom, freePort } from '../../test/process.js';
import { createInboxFolder, type InboxFolderDeps } from './inbox-folder.js';

const SAMPLE = await readFile(new URL('../../samples/welcome.eml', import.meta.url));
const LIMITS = { attachmentMaxBytes: 1024 * 1024, messageMaxBytes: 3 * 1024 * 1024 };

let tdb: TestDatabase;
let dir: string;

beforeAll(async () => {
  tdb = await createTestDatabase('inbox');
});
afterAll(async () => {
  await tdb.drop();
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postroom-inbox-'));
  await sql`delete from outbox`.execute(tdb.db);
  await sql`delete from attachments`.execute(tdb.db);
  await sql`delete from timeline`.execute(tdb.db);
  await sql`delete from emails`.execute(tdb.db);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function folder(over: Partial<InboxFolderDeps> = {}) {
  return createInboxFolder({
    dir,
    db: tdb.db,
    blobs: createMysqlBlobStore(tdb.db),
    log: testLogger(),
    limits: LIMITS,
    settleMs: 0,
    ...over,
  });
}

async function emails() {
  return tdb.db
    .selectFrom('emails')
    .select(['id', 'message_id', 'source', 'subject', 'size', 'attachment_count'])
    .orderBy('created_at')
    .execute();
}
async function receivedEvents(): Promise<number> {
  const row = await tdb.db
    .selectFrom('outbox')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('routing_key', '=', 'email.received')
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
const list = (sub = '') => readdir(join(dir, sub)).catch(() => [] as string[]);

describe('drop folder (INBOX_DIR)', () => {
  it('records a dropped .eml like an IMAP mail, with source file, and moves it to done/ after the commit', async () => {
    await writeFile(join(dir, 'welcome.eml'), SAMPLE);
    const f = folder();
    expect(await f.scan()).toBe(1);

    const rows = await emails();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      message_id: 'welcome-1@postroom.example',
      source: 'file',
      attachment_count: 1,
      size: SAMPLE.length,
    });
    expect(await receivedEvents()).toBe(1);
    const stored = await tdb.db
      .selectFrom('outbox')
      .select('routing_key')
      .where('routing_key', '=', 'attachment.stored')
      .execute();
    expect(stored).toHaveLength(1);
    const event = await tdb.db
      .selectFrom('outbox')
      .select('body')
      .where('routing_key', '=', 'email.received')
      .executeTakeFirstOrThrow();
    expect((JSON.parse(event.body) as { data: { source: string } }).data.source).toBe('file');
    expect(await list()).toEqual(['done']);
    expect(await list('done')).toEqual(['welcome.eml']);
    expect(f.health()).toMatchObject({ ready: true, waiting: 0 });
  });

  it('takes every file of a Maildir new/ folder, and leaves other names and dot files alone', async () => {
    await mkdir(join(dir, 'new'));
    await writeFile(join(dir, 'new', '1733389200.M1P2.host'), nestedMultipartMessage());
    await writeFile(join(dir, 'notes.txt'), 'not mail');
    await writeFile(join(dir, '.half.eml'), plainTextMessage());
    expect(await folder().scan()).toBe(1);
    expect((await emails()).map((e) => e.attachment_count)).toEqual([2]);
    expect((await list()).sort()).toEqual(['.half.eml', 'done', 'new', 'notes.txt']);
    expect(await list('new')).toEqual([]);
    expect(await list('done')).toEqual(['1733389200.M1P2.host']);
  });

  it('never reads a file that is still being written; takes it whole once it has settled', async () => {
    const f = folder({ settleMs: 600 });
    const full = nestedMultipartMessage({ messageId: 'slow-writer@mail.example' });
    const path = join(dir, 'slow.eml');
    // A writer that adds a piece every 150 ms: the file never keeps its size for 600 ms meanwhile.
    const pieces = 8;
    const step = Math.ceil(full.length / pieces);
    await writeFile(path, full.subarray(0, step));
    for (let i = 1; i < pieces; i++) {
      expect(await f.scan(), `scan while piece ${i} of ${pieces} is written`).toBe(0);
      await new Promise((r) => setTimeout(r, 150));
      await appendFile(path, full.subarray(i * step, (i + 1) * step));
    }
    expect(await f.scan()).toBe(0);
    expect(await emails()).toHaveLength(0);
    expect(f.health().waiting).toBe(1);

    await waitFor(() => f.scan(), 10_000, 'the settled file to be taken');
    const rows = await emails();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ size: full.length, attachment_count: 2 });
  });

  it('takes a file renamed into place at once when settled, never its dot-named original', async () => {
    const f = folder({ settleMs: 60_000 });
    await writeFile(join(dir, '.part.eml'), plainTextMessage());
    expect(await f.scan()).toBe(0);
    await rename(join(dir, '.part.eml'), join(dir, 'new.eml'));
    expect(await f.scan()).toBe(0); // a plain .eml still settles first
    await mkdir(join(dir, 'new'));
    await writeFile(join(dir, 'new', '.tmp'), noMessageIdMessage());
    await rename(join(dir, 'new', '.tmp'), join(dir, 'new', 'delivered'));
    expect(await f.scan()).toBe(1); // Maildir new/: complete by contract
    expect(await emails()).toHaveLength(1);
  });

  it('records a mail once when the process stopped between the commit and the move', async () => {
    await writeFile(join(dir, 'a.eml'), SAMPLE);
    await writeFile(join(dir, 'b.eml'), noMessageIdMessage());
    const crashing = folder({
      afterCommit: () => {
        throw new Error('process killed after the commit');
      },
    });
    expect(await crashing.scan()).toBe(0);
    expect(await emails()).toHaveLength(2); // committed...
    expect((await list()).sort()).toEqual(['a.eml', 'b.eml']); // ...but not moved

    const restarted = folder();
    expect(await restarted.scan()).toBe(2);
    expect(await emails()).toHaveLength(2);
    expect(await receivedEvents()).toBe(2);
    expect((await list('done')).sort()).toEqual(['a.eml', 'b.eml']);

    // The same file dropped again later is a duplicate too: moved, not recorded.
    await writeFile(join(dir, 'a.eml'), SAMPLE);
    expect(await restarted.scan()).toBe(1);
    expect(await emails()).toHaveLength(2);
    expect((await list('done')).sort()).toEqual(['a-2.eml', 'a.eml', 'b.eml']);
  });

  it('moves a file it can never record to failed/ with the reason beside it', async () => {
    const f = folder({ limits: { attachmentMaxBytes: 1024, messageMaxBytes: 2048 } });
    await writeFile(join(dir, 'huge.eml'), plainTextMessage({ body: 'x'.repeat(10_000) }));
    expect(await f.scan()).toBe(0);
    expect(await emails()).toHaveLength(0);
    expect((await list('failed')).sort()).toEqual(['huge.eml', 'huge.eml.error.txt']);
    expect(await readFile(join(dir, 'failed', 'huge.eml.error.txt'), 'utf8')).toMatch(/MAIL\.TOO_LARGE/);
  });
});

describe('drop folder in a real process', () => {
  it('records every dropped mail exactly once across a kill -9 and a restart', async () => {
    const vhost = await createTestVhost();
    const ptdb = await createTestDatabase('inboxkill');
    const inbox = await mkdtemp(join(tmpdir(), 'postroom-inbox-kill-'));
    const env = async () => ({
      ROLES: 'inbox',
      AMQP_URL: vhost.url,
      MYSQL_URL: ptdb.url,
      HTTP_PORT: String(await freePort()),
      INBOX_DIR: inbox,
      LOG_LEVEL: 'info',
    });
    try {
      const count = 12;
      for (let i = 0; i < count; i++)
        await writeFile(
          join(inbox, `mail-${i}.eml`),
          nestedMultipartMessage({ messageId: `kill-${i}@mail.example` }),
        );
      const first = spawnPostroom(await env());
      const rows = async () =>
        Number(
          (
            await ptdb.db
              .selectFrom('emails')
              .select((eb) => eb.fn.countAll<number>().as('n'))
              .executeTakeFirstOrThrow()
              .catch(() => ({ n: 0 }))
          ).n,
        );
      await waitFor(async () => (await rows()) > 0, 60_000, 'the first mail to be committed');
      first.child.kill('SIGKILL');
      await first.exited;

      const second = spawnPostroom(await env());
      try {
        await waitFor(
          async () => (await readdir(join(inbox, 'done')).catch(() => [])).length === count,
          60_000,
          'every file in done/',
        );
        expect(await rows()).toBe(count);
        const events = await ptdb.db
          .selectFrom('outbox')
          .select('correlation_id')
          .where('routing_key', '=', 'email.received')
          .execute();
        expect(new Set(events.map((e) => e.correlation_id)).size).toBe(count);
        expect(events).toHaveLength(count);
        expect((await readdir(inbox)).sort()).toEqual(['done']);
      } finally {
        second.child.kill('SIGTERM');
        await second.exited;
      }
    } finally {
      await rm(inbox, { recursive: true, force: true });
      await ptdb.drop();
      await vhost.drop();
    }
  }, 150_000);
});
