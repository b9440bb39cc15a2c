import { createHash, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { BlobStore } from '../infra/blobs/blob-store.js';
import type { Db } from '../infra/db/database.js';
import { recordEmail, type RecordedAttachment } from '../infra/db/repositories/emails.repository.js';

/** One file of a test email: bytes (or a stream for large ones), a name and a declared type. */
export interface TestFile {
  name: string;
  type: string;
  bytes: Buffer | Readable;
  /** False: recorded as over ATTACHMENT_MAX_BYTES (bytes not kept; give a Buffer). */
  stored?: boolean;
}

let uid = 0;

/**
 * Records one email the way the IMAP poller does (bytes in the blob store first, then one transaction
 * with its outbox events), so the consumers of a running Postroom take it from there.
 */
export async function recordTestEmail(
  db: Db,
  blobs: BlobStore,
  opts: { files: TestFile[]; subject?: string; from?: string; receivedAt?: Date },
): Promise<{ emailId: string; attachments: RecordedAttachment[] }> {
  const attachments: RecordedAttachment[] = [];
  for (const f of opts.files) {
    const { sha256, size } =
      f.stored === false && Buffer.isBuffer(f.bytes)
        ? { sha256: createHash('sha256').update(f.bytes).digest('hex'), size: f.bytes.length }
        : await blobs.put(f.bytes);
    attachments.push({
      id: randomUUID(),
      parentId: null,
      filename: f.name,
      originalFilename: f.name,
      declaredType: f.type,
      disposition: 'attachment',
      contentId: null,
      size,
      sha256,
      stored: f.stored !== false,
    });
  }
  uid += 1;
  const { emailId } = await recordEmail(db, {
    source: 'imap',
    mailbox: 'INBOX',
    uid,
    uidValidity: '7',
    receivedAt: opts.receivedAt ?? new Date(),
    parsed: {
      messageId: `${randomUUID()}@mail.example`,
      subject: opts.subject ?? `mail ${uid}`,
      from: opts.from ?? 'ana@example.com',
      size: 1000,
      warnings: [],
      attachments,
    },
  });
  return { emailId, attachments };
}

/** Waits until the email is `done` (every attachment, call and notification final). */
export async function waitForDone(db: Db, emailId: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const row = await db.selectFrom('emails').select('status').where('id', '=', emailId).executeTakeFirst();
    if (row?.status === 'done') return;
    if (Date.now() > until) throw new Error(`email ${emailId} not done after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
