import { EventEmitter } from 'node:events';
import { connect, type Channel, type ChannelModel, type ConfirmChannel, type Options } from 'amqplib';
import { backoffMs } from '../backoff.js';
import { RetryableError } from '../errors.js';
import { redactUrl, type Logger } from '../logger.js';
import { channelRecoveriesTotal } from '../metrics.js';
import { refusedCertificateCode } from '../tls-errors.js';
import { declareTopology, type Topology } from './topology.js';
import { upgradeLegacyQueues } from './topology-upgrade.js';

/** Options of the broker connection. */
export interface BrokerOptions {
  /** `amqp://user:pass@host:port/vhost`, or `amqps://` for TLS. */
  url: string;
  /**
   * PEM of the CA that signed the broker's certificate (`AMQP_TLS_CA`), for `amqps://`; the system CAs
   * when absent. The certificate and the host name are always checked.
   */
  tlsCa?: Buffer;
  /** The layout declared at every connect. */
  topology: Topology;
  /** Process logger. */
  log: Logger;
  /** Name shown in the RabbitMQ management UI. */
  connectionName?: string;
  /** Milliseconds to wait for a publisher confirm before giving up on it (default 10 s). */
  confirmTimeoutMs?: number;
  /** First reconnect delay in ms (default 500), doubled up to `maxReconnectDelayMs` (default 15 s). */
  reconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
  /** AMQP heartbeat in seconds (default 15): a dead peer is noticed within two periods. */
  heartbeatSeconds?: number;
}

/** Work to redo on every connect (consumers re-subscribe here). Gets a live connection. */
export type SetupFn = (model: ChannelModel) => Promise<void>;

/**
 * One resilient RabbitMQ connection per process. It connects with backoff, re-declares the topology
 * and re-runs every registered setup on each reconnect, listens for `error` on every connection and
 * channel, publishes on a confirm channel with a confirm timeout of its own (amqplib's callbacks can
 * hang when a connection drops) and waits for `drain` when the socket buffer is full.
 *
 * RabbitMQ may also close one channel and keep the connection (an unknown delivery tag, a
 * precondition failure, a missing exchange, a consumer cancelled because its queue went): the
 * publishing channel is then reopened at once, and `recover` re-runs a consumer's setup on the same
 * connection, each with the metric `postroom_broker_channel_recoveries_total` and a log line.
 *
 * Events: `connected`, `disconnected` (with the error), `channel-reopened` (after a recovery),
 * `channel-opened` (`{ purpose, channel }` for each consumer channel; tests provoke errors on it).
 */
export class Broker extends EventEmitter {
  private model: ChannelModel | null = null;
  private pubChannel: ConfirmChannel | null = null;
  private readonly setups = new Set<SetupFn>();
  private closing = false;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private connecting: Promise<void> | null = null;
  private readonly pending = new Set<(err: Error) => void>();
  private drainWaiters: (() => void)[] = [];
  private readonly log: Logger;

  constructor(private readonly opts: BrokerOptions) {
    super();
    this.log = opts.log.child({ module: 'broker' });
    this.setMaxListeners(0);
  }

  /** The namespace every name is prefixed with. */
  get namespace(): string {
    return this.opts.topology.namespace;
  }

  /** The topology this connection declares. */
  get topology(): Topology {
    return this.opts.topology;
  }

  /** True while a connection and its publishing channel are open. */
  isConnected(): boolean {
    return this.model !== null && this.pubChannel !== null;
  }

  /** Starts connecting (and keeps retrying in the background); resolves on the first connection. */
  start(): Promise<void> {
    this.closing = false;
    if (this.isConnected()) return Promise.resolve();
    const first = new Promise<void>((resolve) => this.once('connected', () => resolve()));
    this.connectNow();
    return first;
  }

  /** Resolves once connected, or rejects after `timeoutMs`. */
  async waitConnected(timeoutMs = 30_000): Promise<void> {
    if (this.isConnected()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('connected', done);
        reject(new RetryableError('BROKER.UNAVAILABLE', `RabbitMQ not connected after ${timeoutMs} ms`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.once('connected', done);
    });
  }

  /** Registers work to run now (if connected) and after every reconnect. */
  async addSetup(fn: SetupFn): Promise<void> {
    this.setups.add(fn);
    if (this.model) await fn(this.model);
  }

  /** Removes a setup registered with `addSetup`. */
  removeSetup(fn: SetupFn): void {
    this.setups.delete(fn);
  }

  /** Opens a plain channel on the current connection, with an error listener. */
  async createChannel(): Promise<Channel> {
    if (!this.model) throw new RetryableError('BROKER.UNAVAILABLE', 'RabbitMQ is not connected');
    const ch = await this.model.createChannel();
    ch.on('error', (err: Error) => this.log.warn({ err }, 'channel error'));
    return ch;
  }

  /**
   * Publishes one message and resolves when the broker confirms it. Rejects with a retryable error on
   * a nack, a confirm that does not come within the timeout, or a connection lost meanwhile.
   */
  async publish(
    exchange: string,
    routingKey: string,
    content: Buffer,
    options: Options.Publish = {},
  ): Promise<void> {
    const ch = this.pubChannel;
    if (!ch) throw new RetryableError('BROKER.UNAVAILABLE', 'RabbitMQ is not connected; cannot publish');
    const timeoutMs = this.opts.confirmTimeoutMs ?? 10_000;
    let ok = true;
    const confirmed = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(fail);
        reject(
          new RetryableError(
            'BROKER.CONFIRM_TIMEOUT',
            `No publisher confirm within ${timeoutMs} ms for ${routingKey}`,
          ),
        );
      }, timeoutMs);
      const fail = (err: Error) => {
        clearTimeout(timer);
        reject(
          new RetryableError('BROKER.CONNECTION_LOST', `Connection lost before ${routingKey} was confirmed`, {
            cause: err,
          }),
        );
      };
      this.pending.add(fail);
      try {
        ok = ch.publish(exchange, routingKey, content, { persistent: true, ...options }, (err) => {
          clearTimeout(timer);
          this.pending.delete(fail);
          if (err)
            reject(
              new RetryableError('BROKER.NACK', `RabbitMQ refused ${routingKey} on ${exchange}`, {
                cause: err,
              }),
            );
          else resolve();
        });
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(fail);
        reject(
          new RetryableError('BROKER.PUBLISH_FAILED', `Could not publish ${routingKey}`, { cause: err }),
        );
      }
    });
    // publish() returning false still buffered the message: hold further publishes until `drain`.
    if (!ok) await this.waitDrain();
    return confirmed;
  }

  /** Resolves when the publishing channel can take more (immediately when it is not full). */
  private waitDrain(): Promise<void> {
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Closes the connection for good (no reconnect). */
  async close(): Promise<void> {
    this.closing = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    await this.connecting?.catch(() => undefined);
    const model = this.model;
    this.model = null;
    this.pubChannel = null;
    if (model)
      await model.close().catch((err: unknown) => this.log.debug({ err }, 'close after connection loss'));
    this.failPending(new Error('broker closed'));
  }

  private connectNow(): void {
    if (this.connecting || this.closing) return;
    this.connecting = this.tryConnect().finally(() => {
      this.connecting = null;
    });
  }

  private async tryConnect(): Promise<void> {
    let model: ChannelModel | null = null;
    try {
      model = await connect(withHeartbeat(this.opts.url, this.opts.heartbeatSeconds ?? 15), {
        clientProperties: { connection_name: this.opts.connectionName ?? 'postroom' },
        timeout: 10_000,
        ...(this.opts.tlsCa ? { ca: [this.opts.tlsCa] } : {}),
      });
      model.on('error', (err: Error) => this.log.warn({ err }, 'connection error'));
      model.on('blocked', (reason: string) =>
        this.log.warn({ reason }, 'RabbitMQ blocked publishing (resource alarm)'),
      );
      model.on('unblocked', () => this.log.info('RabbitMQ unblocked publishing'));
      const setupChannel = await model.createChannel();
      setupChannel.on('error', (err: Error) => this.log.warn({ err }, 'setup channel error'));
      await declareTopology(setupChannel, this.opts.topology);
      await setupChannel.close();
      try {
        await upgradeLegacyQueues(model, this.opts.topology, this.log);
      } catch (err) {
        // The new queues are declared and used either way; the legacy ones wait for the next connect.
        this.log.warn({ err }, 'could not empty the queues of an earlier release yet');
      }
      const pub = await this.openPublishChannel(model);
      if (this.closing) {
        await model.close().catch(() => undefined);
        return;
      }
      const current = model;
      model.on('close', (err?: Error) => this.onClose(current, err));
      this.model = model;
      this.pubChannel = pub;
      for (const fn of this.setups) await fn(model);
      this.attempt = 0;
      this.log.info({ url: redactUrl(this.opts.url) }, 'connected to RabbitMQ');
      this.emit('connected');
    } catch (err) {
      const refused = refusedCertificateCode(err);
      this.log.warn(
        { err, attempt: this.attempt + 1 },
        refused
          ? `RabbitMQ's TLS certificate was refused (${refused}): set AMQP_TLS_CA to the CA that signed it, and connect by a host name the certificate names`
          : 'RabbitMQ connection attempt failed',
      );
      if (model) await model.close().catch(() => undefined);
      if (this.model === model) {
        this.model = null;
        this.pubChannel = null;
      }
      this.scheduleReconnect();
    }
  }

  /**
   * Opens the confirm channel publishes go through. When RabbitMQ closes it under a live connection
   * (publishing to an exchange that is gone, say), the confirms waiting on it fail (their callers
   * retry) and a new one is opened, so the relay does not stall until the TCP connection drops.
   */
  private async openPublishChannel(model: ChannelModel): Promise<ConfirmChannel> {
    const pub = await model.createConfirmChannel();
    pub.on('error', (err: Error) => this.log.warn({ err }, 'publish channel error'));
    pub.on('drain', () => {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    });
    pub.on('close', () => {
      if (this.pubChannel !== pub) return;
      this.pubChannel = null;
      this.failPending(new Error('publish channel closed'));
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
      this.recoverOn(model, 'publish', async (m) => {
        const next = await this.openPublishChannel(m);
        if (this.model === m && !this.closing) this.pubChannel = next;
        else await next.close().catch(() => undefined);
      });
    });
    return pub;
  }

  /**
   * Re-runs a setup after RabbitMQ closed its channel (or cancelled its consumer) while the
   * connection stayed up: the topology is declared again first (a cancel often means the queue was
   * deleted), then `fn` runs. Nothing happens when the connection itself is going: the reconnect
   * re-runs every setup. Repeated failures back off up to `maxReconnectDelayMs`.
   */
  recover(fn: SetupFn, channel = 'consumer'): void {
    const model = this.model;
    if (!model || !this.setups.has(fn)) return;
    this.recoverOn(model, channel, async (m) => {
      if (this.setups.has(fn)) await fn(m);
    });
  }

  private recoverOn(model: ChannelModel, channel: string, work: SetupFn, attempt = 0): void {
    const delay = backoffMs(
      { baseMs: this.opts.reconnectDelayMs ?? 500, maxMs: this.opts.maxReconnectDelayMs ?? 15_000 },
      attempt,
    );
    // Waiting also lets a connection that is closing say so first: its channels close before it does.
    const timer = setTimeout(() => {
      if (this.model !== model || this.closing) return;
      void (async () => {
        try {
          const ch = await model.createChannel();
          ch.on('error', (err: Error) => this.log.warn({ err }, 'setup channel error'));
          await declareTopology(ch, this.opts.topology);
          await ch.close();
          await work(model);
          channelRecoveriesTotal.inc({ channel });
          this.log.warn({ channel, attempt: attempt + 1 }, 'RabbitMQ closed a channel; reopened it');
          this.emit('channel-reopened', channel);
        } catch (err) {
          this.log.warn({ err, channel, attempt: attempt + 1 }, 'could not reopen a channel yet');
          this.recoverOn(model, channel, work, attempt + 1);
        }
      })();
    }, delay);
    timer.unref();
  }

  private onClose(model: ChannelModel, err?: Error): void {
    if (this.model !== model) return;
    this.model = null;
    this.pubChannel = null;
    this.failPending(err ?? new Error('connection closed'));
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
    this.emit('disconnected', err);
    if (this.closing) return;
    this.log.warn({ err }, 'RabbitMQ connection lost; reconnecting');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closing || this.reconnectTimer) return;
    const base = this.opts.reconnectDelayMs ?? 500;
    const max = this.opts.maxReconnectDelayMs ?? 15_000;
    const delay = backoffMs({ baseMs: base, maxMs: max }, this.attempt);
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connectNow();
    }, delay);
  }

  private failPending(err: Error): void {
    const fails = [...this.pending];
    this.pending.clear();
    for (const f of fails) f(err);
  }
}

/** Adds `heartbeat=<s>` to an AMQP URL unless it already sets one. */
function withHeartbeat(url: string, seconds: number): string {
  const u = new URL(url);
  if (!u.searchParams.has('heartbeat')) u.searchParams.set('heartbeat', String(seconds));
  return u.toString();
}
