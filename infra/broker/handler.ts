import type { Transaction } from 'kysely';
import type { AnyEvent, EventOf, EventType } from '../../contracts/index.js';
import type { Db, Database } from '../db/database.js';
import type { Logger } from '../logger.js';

/** Returned by `commit` when this consumer had already applied the event (a redelivery). */
export const DUPLICATE: unique symbol = Symbol('duplicate');

/** Stages events to be published if, and only if, the surrounding transaction commits. */
export type Emit = (event: AnyEvent) => void;

/** What a handler gets besides the event. */
export interface HandlerContext<T extends EventType = EventType> {
  /** Logger with `consumer`, `eventId` and `correlationId` bound. */
  log: Logger;
  /** The database, for reads and for work outside the final transaction. */
  db: Db;
  /** 1 for the first delivery, then 2, 3... across retry tiers. */
  attempt: number;
  /** When the message was first handled (epoch ms): the start of its retry budget. */
  since: number;
  /**
   * True when this is the last attempt before the message is parked: the attempts of the tiers are
   * spent, or, for a consumer with `retryForMs`, its time is.
   */
  lastAttempt: boolean;
  /**
   * Runs `fn` in one transaction that also records the event in this consumer's inbox; events passed
   * to `emit` go to the outbox in the same transaction. Resolves to `DUPLICATE` (and rolls back) when
   * the inbox already holds the event. Call at most once; when a handler never calls it, the runner
   * records the event in the inbox alone after the handler returns.
   */
  commit<R>(fn: (trx: Transaction<Database>, emit: Emit) => Promise<R>): Promise<R | typeof DUPLICATE>;
  /**
   * Says the event changes nothing for this consumer (an event it binds but has no work for): the
   * runner then keeps no inbox row for it. A repeat of such an event changes nothing either, so the
   * row would guard nothing, and the inbox grows by one row fewer per such event.
   */
  unchanged(): void;
  /** Builds an event caused by the one being handled (same correlation id, causation id = its id). */
  event<U extends EventType>(type: U, data: EventOf<U>['data']): EventOf<U>;
  /** The event being handled. */
  current: EventOf<T>;
}

/** A consumer: a name (also its queue's name), the events it binds, and what it does with each. */
export interface ConsumerDefinition<T extends EventType = EventType> {
  /** Kebab-case name; the queue is `<namespace>.<name>` and the inbox is keyed by it. */
  name: string;
  /** Event types (routing keys) the queue is bound to. */
  events: readonly T[];
  /**
   * Applies one event. Throw `RetryableError` (or any unknown error) to retry after a delay,
   * `PermanentError` to park at once with the reason.
   */
  handle(event: EventOf<T>, ctx: HandlerContext<T>): Promise<void>;
  /** Messages in flight at once (default 16). */
  prefetch?: number;
  /** Attempts before parking (default: one per retry tier plus the first). */
  maxAttempts?: number;
  /**
   * Retry for this long (ms) since the message was first handled instead of counting attempts: the
   * last retry tier repeats until the budget is spent. For consumers that must wait out an outage.
   */
  retryForMs?: number | ((event: EventOf<T>) => number);
  /**
   * When true, the `ctx.commit` work of messages handled at about the same time shares one
   * transaction (`CommitBatcher`): one inbox INSERT, one outbox INSERT and one COMMIT for the lot. A
   * batch that fails is committed again one message at a time, so the commit function may run twice:
   * it must write only through its transaction and stage events only through `emit`.
   */
  batchCommits?: boolean;
  /**
   * Which failures `retryForMs` applies to (default: every retryable one); the others are parked
   * after the attempts of the tiers, as without a budget.
   */
  waitsOut?: (err: unknown) => boolean;
}
