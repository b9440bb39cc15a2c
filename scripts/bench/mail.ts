import { randomBytes } from 'node:crypto';
import type { ImapFlow } from 'imapflow';
import type { BenchDovecot } from './dovecot.js';

/** Senders the benchmark mails come from: each is one Drive folder per month (`{yyyy}/{mm}/{from}`). */
const SENDERS = 10;

/** Bytes that any type sniffer calls a PDF (`%PDF-` first), random after that so each file is unique. */
export function pdfLike(size: number): Buffer {
  const bytes = randomBytes(size);
  bytes.write('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 0, 'latin1');
  return bytes;
}

/** Base64 in 76-character lines joined by CRLF, built straight into a Buffer (the 25 MiB mail too). */
export function base64Lines(bytes: Buffer): Buffer {
  const b64 = Buffer.from(bytes.toString('base64'), 'latin1');
  const lines = Math.ceil(b64.length / 76);
  const out = Buffer.allocUnsafe(b64.length + Math.max(0, lines - 1) * 2);
  let o = 0;
  for (let i = 0; i < b64.length; i += 76) {
    if (i > 0) o += out.write('\r\n', o, 'latin1');
    o += b64.copy(out, o, i, Math.min(i + 76, b64.length));
  }
  return out;
}

/** One benchmark mail: a line of text and one PDF attachment. */
export function benchMail(opts: {
  messageId: string;
  index: number;
  attachment: Buffer;
  subject?: string;
}): Buffer {
  const from = `sender-${opts.index % SENDERS}@bench.example`;
  const name = `report-${opts.index}.pdf`;
  const head = [
    `From: "Sender ${opts.index % SENDERS}" <${from}>`,
    'To: inbox@postroom.bench',
    `Subject: ${opts.subject ?? `Benchmark mail ${opts.index}`}`,
    `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <${opts.messageId}>`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="bench-boundary"',
    '',
    '--bench-boundary',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `Benchmark mail ${opts.index}: one attachment follows.`,
    '--bench-boundary',
    `Content-Type: application/pdf; name="${name}"`,
    `Content-Disposition: attachment; filename="${name}"`,
    'Content-Transfer-Encoding: base64',
    '',
    '',
  ].join('\r\n');
  return Buffer.concat([
    Buffer.from(head, 'utf8'),
    base64Lines(opts.attachment),
    Buffer.from('\r\n--bench-boundary--\r\n', 'latin1'),
  ]);
}

/** When each mail went in: Message-ID to the time (ms since the epoch) the server confirmed its APPEND. */
export interface AppendLog {
  /** Time the first APPEND was sent. */
  firstStartedAt: number;
  /** Time the last APPEND was confirmed. */
  lastDoneAt: number;
  appendedAt: Map<string, number>;
  /** APPENDs that failed, with the first error. */
  failed: number;
  firstError: string | null;
}

/** A few IMAP connections appending to one mailbox. */
export class Appender {
  private constructor(
    private readonly clients: ImapFlow[],
    private readonly mailbox: string,
  ) {}

  /** Opens `connections` clients on the server. */
  static async open(server: BenchDovecot, mailbox: string, connections: number): Promise<Appender> {
    const clients = await Promise.all(Array.from({ length: connections }, () => server.client()));
    return new Appender(clients, mailbox);
  }

  /** Appends `count` mails as fast as the connections allow; `build(i)` makes mail i. */
  async burst(count: number, build: (i: number) => { messageId: string; raw: Buffer }): Promise<AppendLog> {
    const log = newLog();
    let next = 0;
    await Promise.all(
      this.clients.map(async (client) => {
        for (let i = next++; i < count; i = next++) await this.appendOne(client, build(i), log);
      }),
    );
    return log;
  }

  /**
   * Appends `count` mails at `perSecond`, on schedule whatever the previous APPENDs are doing (they
   * queue on their connection if the server is slow, and the log records when each was confirmed).
   */
  async paced(
    count: number,
    perSecond: number,
    build: (i: number) => { messageId: string; raw: Buffer },
  ): Promise<AppendLog> {
    const log = newLog();
    const started = Date.now();
    const pending: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      const due = started + (i * 1000) / perSecond;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const client = this.clients[i % this.clients.length]!;
      pending.push(this.appendOne(client, build(i), log));
    }
    await Promise.all(pending);
    return log;
  }

  /**
   * Moves every mail of mailbox `from` into `to` in one UID MOVE: a backlog appears in the watched
   * mailbox at once. Resolves with the log of the mails moved (all "appended" when the MOVE ended).
   */
  async moveAll(from: string, to: string, messageIds: readonly string[]): Promise<AppendLog> {
    const client = this.clients[0]!;
    const log = newLog();
    log.firstStartedAt = Date.now();
    const lock = await client.getMailboxLock(from);
    try {
      await client.messageMove('1:*', to, { uid: true });
    } finally {
      lock.release();
    }
    const now = Date.now();
    log.lastDoneAt = now;
    for (const id of messageIds) log.appendedAt.set(id, now);
    return log;
  }

  /** Logs every connection out. */
  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.logout().catch(() => c.close())));
  }

  private async appendOne(
    client: ImapFlow,
    mail: { messageId: string; raw: Buffer },
    log: AppendLog,
  ): Promise<void> {
    if (log.firstStartedAt === 0) log.firstStartedAt = Date.now();
    try {
      await client.append(this.mailbox, mail.raw);
      const now = Date.now();
      log.appendedAt.set(mail.messageId, now);
      log.lastDoneAt = Math.max(log.lastDoneAt, now);
    } catch (err) {
      log.failed += 1;
      log.firstError ??= (err as Error).message;
    }
  }
}

function newLog(): AppendLog {
  return { firstStartedAt: 0, lastDoneAt: 0, appendedAt: new Map(), failed: 0, firstError: null };
}
