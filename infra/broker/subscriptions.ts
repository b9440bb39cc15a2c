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
  /** Files accepted attachments and their PDFs; closes emails whose attachments are all final. */
  'drive-upload': ['attachment.analyzed', 'attachment.converted'],
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
 * Events a consumer was subscribed to by an earlier release and no longer is: their bindings are
 * removed at every connect, and the consumer still accepts (and handles) what they queued before.
 * - `drive-upload` / `email.received`: an email with no attachment is now closed when it is recorded
 *   (`recordEmail`), so the Drive consumer had nothing left to do with `email.received` but ack it:
 *   one delivery per email less.
 */
export const RETIRED_SUBSCRIPTIONS = {
  'drive-upload': ['email.received'],
} as const satisfies Partial<Record<ConsumerName, readonly EventType[]>>;

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
        retired: retiredOf(name).map(binding),
      })),
    retryDelaysMs: opts.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS,
    deliveryLimit: opts.deliveryLimit ?? 10,
  };
}

/** The binding that routes events of one type to a queue. */
function binding(type: EventType): { exchange: string; routingKey: string } {
  return { exchange: contracts[type].exchange, routingKey: type };
}

/** The event types a consumer no longer subscribes to (see RETIRED_SUBSCRIPTIONS). */
function retiredOf(consumer: string): readonly EventType[] {
  return (RETIRED_SUBSCRIPTIONS as Partial<Record<string, readonly EventType[]>>)[consumer] ?? [];
}
