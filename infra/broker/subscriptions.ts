import { contracts, EXCHANGES, type EventType } from '../../contracts/index.js';
import { DEFAULT_RETRY_DELAYS_MS, type Topology } from './topology.js';

/**
 * Which consumer queue receives which events: the one place they are declared. Each consumer's
 * definition takes its `events` from here, so the queue's bindings and the types its handler accepts
 * cannot disagree (a type bound but not accepted would be parked). Here rather than in the handlers
 * because every process declares the queues, whatever roles it runs, without loading every consumer.
 */
export const SUBSCRIPTIONS = {
  /** Looks at the bytes of each stored attachment. */
  'attachment-analysis': ['attachment.stored'],
  /**
   * Files accepted attachments and their PDFs; closes emails whose attachments are all final.
   * `email.received` only for emails recorded by an earlier release, which left attachmentless emails
   * open for this consumer to close (they are closed when recorded now). It stays bound until no
   * process of such a release can be recording mail: unbound while one still does (a rolling upgrade
   * of separate pods), its attachmentless emails would stay `processing` for good.
   */
  'drive-upload': ['email.received', 'attachment.analyzed', 'attachment.converted'],
  /** Converts accepted office documents to PDF (role `convert`, with a converter configured). */
  conversion: ['attachment.analyzed'],
  /**
   * Calls the hooks of HOOKS_FILE: every event a hook may name, that is every type except
   * `outbound.completed` (a hook on the completion of hook calls would call itself forever).
   */
  'outbound-api': [
    'email.received',
    'attachment.stored',
    'attachment.analyzed',
    'attachment.converted',
    'attachment.uploaded',
    'email.processed',
    'telegram.update',
    'notification.sent',
    'api.polled',
  ],
  /** Runs scheduled jobs (poll, digest, backup) when their due time is claimed. */
  jobs: ['schedule.fired'],
  /** Answers Telegram commands and takes in files sent to the bot. */
  'telegram-bot': ['telegram.update'],
  /** Tells subscribed Telegram chats about processed emails. */
  'telegram-notifier': ['email.processed'],
} as const satisfies Record<string, readonly EventType[]>;

/** A consumer queue name. */
export type ConsumerName = keyof typeof SUBSCRIPTIONS;

/**
 * Queues of the main path of a mail. Every process declares them, whatever roles it runs, so an event
 * published before its consumer ever started waits in a durable queue instead of being dropped.
 */
export const CORE_CONSUMERS: readonly ConsumerName[] = ['attachment-analysis', 'drive-upload'];

/** Options for the production topology. */
export interface TopologyOptions {
  /** Name prefix (default `postroom`). */
  namespace?: string;
  /**
   * Consumer queues to declare (default: all). A process declares the core ones and the optional ones
   * (outbound calls, Telegram) only when it runs them configured: a queue nobody will ever read would
   * otherwise fill up with every email's events.
   */
  consumers?: readonly ConsumerName[];
  retryDelaysMs?: readonly number[];
  deliveryLimit?: number;
}

/** The topology every Postroom process declares. */
export function postroomTopology(opts: TopologyOptions = {}): Topology {
  return {
    namespace: opts.namespace ?? 'postroom',
    exchanges: [...EXCHANGES],
    queues: Object.entries(SUBSCRIPTIONS)
      .filter(([name]) => !opts.consumers || opts.consumers.includes(name as ConsumerName))
      .map(([name, events]) => ({
        name,
        bindings: (events as readonly EventType[]).map(binding),
      })),
    retryDelaysMs: opts.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS,
    deliveryLimit: opts.deliveryLimit ?? 10,
  };
}

/** The binding that routes events of one type to a queue. */
function binding(type: EventType): { exchange: string; routingKey: string } {
  return { exchange: contracts[type].exchange, routingKey: type };
}
