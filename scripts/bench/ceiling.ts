import { randomBytes } from 'node:crypto';
import { connect, type ConfirmChannel } from 'amqplib';
import { createPool } from 'mysql2';
import { rate, summarize } from './stats.js';

/**
 * The ceiling: what RabbitMQ and MySQL give on this machine with nothing of ours in the way. No
 * pipeline can pass these figures; the runner and end-to-end figures are read against them.
 */

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
    const publishMs = await publishWindowed(pub, opts.queue, payload, opts.messages, opts.window);
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
    await new Promise<void>((resolve, reject) => {
      sub.on('error', reject);
      void sub
        .consume(opts.queue, (msg) => {
          if (!msg) return reject(new Error('consumer cancelled'));
          sub.ack(msg);
          if (++consumed === opts.messages + 200) resolve();
        })
        .then((r) => (tag = r.consumerTag), reject);
    });
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
