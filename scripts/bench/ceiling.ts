import { createHash, randomBytes } from 'node:crypto';
import { connect, type ConfirmChannel } from 'amqplib';
import { simpleParser } from 'mailparser';
import { createPool } from 'mysql2';
import { cpuBetween, cpuSnapshot } from './cpu.js';
import type { BenchDovecot } from './dovecot.js';
import { Appender, benchMail, pdfLike } from './mail.js';
import { rate, summarize } from './stats.js';

/**
 * The ceiling: what RabbitMQ, MySQL and Dovecot give on this machine with nothing of ours in the way,
 * and what the stack's own client libraries cost to use them. No pipeline can pass these figures; the
 * runner and end-to-end figures are read against them.
 */

/** CPU milliseconds per unit of work: this process (the client library) and one service beside it. */
export interface CpuPerUnit {
  clientMs: number;
  serviceMs: number;
}

/**
 * Runs `fn` and answers the CPU it cost per unit, in this process and in `service` (a group of
 * `cpu.ts`: `rabbitmq`, `dovecot`). The /proc snapshots are taken outside this process's own count.
 */
async function cpuPerUnit<T>(
  units: number,
  service: string,
  fn: () => Promise<T>,
): Promise<{ result: T; cpu: CpuPerUnit }> {
  const before = cpuSnapshot(new Map());
  const own = process.cpuUsage();
  const result = await fn();
  const used = process.cpuUsage(own);
  const usage = cpuBetween(before, cpuSnapshot(new Map()));
  return {
    result,
    cpu: {
      clientMs: (used.user + used.system) / 1000 / units,
      serviceMs: ((usage.cores[service] ?? 0) * usage.wallSeconds * 1000) / units,
    },
  };
}

/** Raw AMQP figures. */
export interface AmqpCeiling {
  messages: number;
  bytes: number;
  window: number;
  prefetch: number;
  queueType: 'quorum';
  publishPerSecond: number;
  consumePerSecond: number;
  /** One publish waiting for its confirm, nothing else in flight (ms): what a small outbox batch waits. */
  confirmMsP50: number;
  confirmMsP99: number;
  /** CPU per message published (with its confirm) and per message consumed (with its ack). */
  publishCpu: CpuPerUnit;
  consumeCpu: CpuPerUnit;
}

/**
 * Publishes `messages` persistent messages of `bytes` to a durable quorum queue (the kind Postroom's
 * consumers read) on a confirm channel with at most `window` unconfirmed, then consumes them with
 * `prefetch` and one ack per message. The queue is deleted afterwards.
 */
export async function amqpCeiling(opts: {
  url: string;
  queue: string;
  messages: number;
  bytes: number;
  window: number;
  prefetch: number;
}): Promise<AmqpCeiling> {
  const conn = await connect(opts.url);
  conn.on('error', () => undefined);
  try {
    const setup = await conn.createChannel();
    await setup.assertQueue(opts.queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await setup.close();

    const pub = await conn.createConfirmChannel();
    const payload = randomBytes(opts.bytes);
    const { result: publishMs, cpu: publishCpu } = await cpuPerUnit(opts.messages, 'rabbitmq', () =>
      publishWindowed(pub, opts.queue, payload, opts.messages, opts.window),
    );
    const single: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t = performance.now();
      await publishWindowed(pub, opts.queue, payload, 1, 1);
      single.push(performance.now() - t);
    }
    await pub.close();
    const confirm = summarize(single);

    const sub = await conn.createChannel();
    await sub.prefetch(opts.prefetch);
    const started = performance.now();
    let consumed = 0;
    let tag = '';
    const { cpu: consumeCpu } = await cpuPerUnit(
      opts.messages + 200,
      'rabbitmq',
      () =>
        new Promise<void>((resolve, reject) => {
          sub.on('error', reject);
          void sub
            .consume(opts.queue, (msg) => {
              if (!msg) return reject(new Error('consumer cancelled'));
              sub.ack(msg);
              if (++consumed === opts.messages + 200) resolve();
            })
            .then((r) => (tag = r.consumerTag), reject);
        }),
    );
    const consumeMs = performance.now() - started;
    await sub.cancel(tag);
    await sub.deleteQueue(opts.queue);
    await sub.close();
    return {
      confirmMsP50: confirm.p50,
      confirmMsP99: confirm.p99,
      messages: opts.messages,
      bytes: opts.bytes,
      window: opts.window,
      prefetch: opts.prefetch,
      queueType: 'quorum',
      publishPerSecond: rate(opts.messages, publishMs),
      consumePerSecond: rate(opts.messages + 200, consumeMs),
      publishCpu,
      consumeCpu,
    };
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** Publishes with at most `window` unconfirmed, respecting `drain`; resolves with the time taken (ms). */
export async function publishWindowed(
  ch: ConfirmChannel,
  queue: string,
  payload: Buffer | ((i: number) => Buffer),
  count: number,
  window: number,
): Promise<number> {
  let inFlight = 0;
  let failed: Error | null = null;
  let wake: (() => void) | null = null;
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    while (inFlight >= window) await new Promise<void>((r) => (wake = r));
    if (failed) throw failed;
    inFlight++;
    const body = typeof payload === 'function' ? payload(i) : payload;
    const ok = ch.publish('', queue, body, { persistent: true }, (err) => {
      inFlight--;
      if (err) failed ??= err instanceof Error ? err : new Error(String(err));
      const w = wake;
      wake = null;
      w?.();
    });
    if (!ok) await new Promise<void>((r) => ch.once('drain', () => r()));
  }
  while (inFlight > 0) await new Promise<void>((r) => (wake = r));
  if (failed) throw failed;
  return performance.now() - started;
}

/** Raw MySQL figures. */
export interface MysqlCeiling {
  commits: number;
  connections: number;
  commitsPerSecond: number;
  /** Median and p99 of one BEGIN, INSERT, COMMIT (ms). */
  commitMsP50: number;
  commitMsP99: number;
}

/**
 * `commits` single-row transactions (BEGIN, INSERT, COMMIT, as Kysely's `transaction()` sends them)
 * from a pool of `connections`, all busy at once, into a table of the run's database.
 */
export async function mysqlCeiling(opts: {
  url: string;
  commits: number;
  connections: number;
}): Promise<MysqlCeiling> {
  const pool = createPool({ uri: opts.url, connectionLimit: opts.connections }).promise();
  try {
    await pool.query(
      'CREATE TABLE IF NOT EXISTS bench_commits (id BIGINT AUTO_INCREMENT PRIMARY KEY, payload VARBINARY(255) NOT NULL, created_at DATETIME(3) NOT NULL) ENGINE=InnoDB',
    );
    const payload = randomBytes(200);
    let next = 0;
    const times: number[] = [];
    const started = performance.now();
    await Promise.all(
      Array.from({ length: opts.connections }, async () => {
        const conn = await pool.getConnection();
        try {
          while (next < opts.commits) {
            next++;
            const t = performance.now();
            await conn.query('BEGIN');
            await conn.execute('INSERT INTO bench_commits (payload, created_at) VALUES (?, ?)', [
              payload,
              new Date(),
            ]);
            await conn.query('COMMIT');
            times.push(performance.now() - t);
          }
        } finally {
          conn.release();
        }
      }),
    );
    const ms = performance.now() - started;
    times.sort((a, b) => a - b);
    return {
      commits: opts.commits,
      connections: opts.connections,
      commitsPerSecond: rate(opts.commits, ms),
      commitMsP50: times[Math.floor(times.length / 2)] ?? Number.NaN,
      commitMsP99: times[Math.min(times.length - 1, Math.ceil(times.length * 0.99) - 1)] ?? Number.NaN,
    };
  } finally {
    await pool.end().catch(() => undefined);
  }
}

/** Raw IMAP figures: Dovecot and the stack's IMAP client and MIME parser, nothing of Postroom. */
export interface ImapCeiling {
  mails: number;
  attachmentBytes: number;
  /** FETCH of every whole message with imapflow, one connection. */
  fetchPerSecond: number;
  fetchCpu: CpuPerUnit;
  /**
   * Each fetched message parsed by mailparser's `simpleParser` and its attachment hashed (SHA-256), in
   * this process alone, once V8 has compiled the parser (after at least 2,000 parses).
   */
  parsePerSecond: number;
  parseCpuMs: number;
}

/** Parses done before the one measured, so that the parser runs compiled. */
export const PARSE_WARMUP = 2000;

/**
 * Appends `mails` benchmark mails to a mailbox of their own, FETCHes every whole message on one
 * connection, then parses each with mailparser's `simpleParser` and hashes its attachment, one after
 * another: the least any consumer of this stack does per mail before it records anything (Postroom's
 * poller does that much, streaming and with its own checks, for every mail). The parse is measured
 * after a warm-up, so the figure is a floor, not a cold start. The mailbox is deleted afterwards.
 */
export async function imapCeiling(opts: {
  server: BenchDovecot;
  mailbox: string;
  mails: number;
  attachmentBytes: number;
}): Promise<ImapCeiling> {
  await opts.server.createMailbox(opts.mailbox);
  const appender = await Appender.open(opts.server, opts.mailbox, 4);
  try {
    const log = await appender.burst(opts.mails, (i) => {
      const messageId = `ceiling-${i}-${randomBytes(4).toString('hex')}@bench.example`;
      return {
        messageId,
        raw: benchMail({ messageId, index: i, attachment: pdfLike(opts.attachmentBytes) }),
      };
    });
    if (log.failed > 0) throw new Error(`${log.failed} APPENDs failed: ${log.firstError ?? '?'}`);
  } finally {
    await appender.close();
  }
  const client = await opts.server.client();
  const sources: Buffer[] = [];
  let fetchMs = 0;
  let fetchCpu: CpuPerUnit;
  try {
    const lock = await client.getMailboxLock(opts.mailbox);
    try {
      ({ cpu: fetchCpu } = await cpuPerUnit(opts.mails, 'dovecot', async () => {
        const started = performance.now();
        for await (const m of client.fetch('1:*', { uid: true, source: true })) {
          if (!m.source) throw new Error(`UID ${m.uid} came without its source`);
          sources.push(m.source);
        }
        fetchMs = performance.now() - started;
      }));
    } finally {
      lock.release();
    }
  } finally {
    await client.mailboxDelete(opts.mailbox).catch(() => undefined);
    await client.logout().catch(() => client.close());
  }
  if (sources.length !== opts.mails) throw new Error(`fetched ${sources.length} of ${opts.mails} mails`);
  const parseAll = async () => {
    for (const source of sources) {
      const parsed = await simpleParser(source);
      if (parsed.attachments.length !== 1) throw new Error('a benchmark mail lost its attachment');
      createHash('sha256').update(parsed.attachments[0]!.content).digest('hex');
    }
  };
  for (let done = 0; done < PARSE_WARMUP; done += sources.length) await parseAll();
  const started = performance.now();
  const own = process.cpuUsage();
  await parseAll();
  const used = process.cpuUsage(own);
  return {
    mails: opts.mails,
    attachmentBytes: opts.attachmentBytes,
    fetchPerSecond: rate(opts.mails, fetchMs),
    fetchCpu,
    parsePerSecond: rate(opts.mails, performance.now() - started),
    parseCpuMs: (used.user + used.system) / 1000 / opts.mails,
  };
}
