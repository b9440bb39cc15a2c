import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import {
  contracts,
  EnvelopeHeader,
  ajv,
  formatErrors,
  type AnyEvent,
  type EventType,
} from '../../contracts/index.js';
import { isDuplicateKey, type Db } from '../db/database.js';
import { parkMessage } from '../db/repositories/dead-letters.repository.js';
import { backoffMs } from '../backoff.js';
import {
  DeferredError,
  describeError,
  isRetryable,
  PermanentError,
  PostroomError,
  RetryableError,
  ValidationError,
} from '../errors.js';
import { errorTracker } from '../error-tracking.js';
import { lazyChild, type Logger } from '../logger.js';
import { consumedTotal, handlerSeconds, parkedTotal, retriedTotal } from '../metrics.js';
import { AckBatcher } from './acks.js';
import { CommitBatcher } from './commit-batcher.js';
import type { Broker } from './connection.js';
import { createEvent } from './events.js';
import { DUPLICATE, type ConsumerDefinition, type Emit, type HandlerContext } from './handler.js';
import { InboxWriter } from './inbox-writer.js';
import { enqueueEvents, signalOutbox } from './outbox.js';
import { names } from './topology.js';

/** Header carrying the attempt number of a retried message (1 for the first delivery). */
export const ATTEMPT_HEADER = 'x-postroom-attempt';
/** Header carrying the last error of a retried message. */
export const LAST_ERROR_HEADER = 'x-postroom-last-error';
/** Header carrying when the message was first handled (epoch ms): the start of its retry budget. */
export const FIRST_AT_HEADER = 'x-postroom-first-at';

/** Share of a retry tier's delay drawn at random, so messages that failed together spread out. */
const TIER_JITTER = 0.25;

/**
 * Where and how long a message waits before it comes back. Each tier queue holds messages whose own
 * `expiration` is at most the tier's delay: RabbitMQ expires only the head of a queue, so a message
 * behind a longer-lived one waits at most the tier's delay, never longer. A real failure waits the
 * tier of its attempt (or a later one, when the failure asked for longer), shortened by up to a
 * quarter at random; a deferral (`DeferredError`, nothing was tried) waits what it asked for, in the
 * first tier long enough, so an open circuit costs its cool-down and not the longest tier.
 */
export function retryWait(
  tiers: readonly number[],
  attempt: number,
  err: unknown,
  random: () => number = Math.random,
): { tier: number; waitMs: number } {
  const last = tiers.length - 1;
  const wanted = err instanceof RetryableError ? (err.retryAfterMs ?? 0) : 0;
  const deferred = err instanceof DeferredError;
  let tier = deferred ? 0 : Math.min(Math.max(0, attempt - 1), last);
  while (tier < last && (tiers[tier] ?? 0) < wanted) tier += 1;
  const delay = tiers[tier] ?? 0;
  const own = deferred ? 0 : backoffMs({ baseMs: delay, maxMs: delay, jitter: TIER_JITTER }, 0, 0, random);
  return { tier, waitMs: Math.max(1, Math.round(Math.min(delay, Math.max(own, wanted)))) };
}

const validateHeader = ajv.compile(EnvelopeHeader);

/** What a running consumer exposes. */
export interface RunningConsumer {
  /** Queue name (namespace included). */
  queue: string;
  /** Stops taking messages, finishes the ones in flight, closes its channel. */
  stop(): Promise<void>;
}

/** Dependencies of the runner. */
export interface ConsumerDeps {
  broker: Broker;
  db: Db;
  log: Logger;
}

/** Marker thrown inside a commit transaction to roll it back when the inbox already has the event. */
class AlreadyProcessed extends Error {}

/**
 * Runs one consumer: subscribes its queue (again after every reconnect) with its prefetch, validates
 * each message against its contract, skips events its inbox already holds, calls the handler, and
 * turns the outcome into an ack, a retry through the delay tiers, or a dead letter in MySQL.
 */
export async function startConsumer<T extends EventType>(
  def: ConsumerDefinition<T>,
  deps: ConsumerDeps,
): Promise<RunningConsumer> {
  const { broker, db } = deps;
  const ns = broker.namespace;
  const queue = names.queue(ns, def.name);
  const tiers = broker.topology.retryDelaysMs;
  const maxAttempts = def.maxAttempts ?? tiers.length + 1;
  const log = deps.log.child({ module: 'consumer', consumer: def.name });
  const inFlight = new Set<Promise<void>>();
  const inbox = new InboxWriter(db, def.name);
  const batcher = def.batchCommits ? new CommitBatcher(db, def.name) : null;
  let channel: Channel | null = null;
  let channelAcks: AckBatcher | null = null;
  let consumerTag: string | null = null;
  let stopping = false;

  const park = async (
    msg: ConsumeMessage,
    reason: string,
    attempts: number,
    header: Partial<EnvelopeHeader> | null,
    code: string,
  ) => {
    await parkMessage(db, {
      consumer: def.name,
      queue: def.name,
      body: msg.content,
      headers: (msg.properties.headers ?? {}) as Record<string, unknown>,
      reason,
      attempts,
      eventId:
        typeof header?.id === 'string'
          ? header.id
          : ((msg.properties.messageId as string | undefined) ?? null),
      eventType: typeof header?.type === 'string' ? header.type : null,
      correlationId: typeof header?.correlationId === 'string' ? header.correlationId : null,
    });
    parkedTotal.inc({ queue: def.name, code });
    errorTracker().parked({
      consumer: def.name,
      eventType: typeof header?.type === 'string' ? header.type : null,
      code,
      reason,
      correlationId: typeof header?.correlationId === 'string' ? header.correlationId : null,
    });
  };

  // A deferral is not an attempt: the message comes back with the same attempt number. The ack of
  // the old delivery and the publish of the new message also keep RabbitMQ's delivery count (the
  // delivery limit) for crashes only.
  const retry = async (msg: ConsumeMessage, attempt: number, since: number, err: unknown) => {
    const { tier, waitMs } = retryWait(tiers, attempt, err);
    const deferred = err instanceof DeferredError;
    await broker.publish('', names.retryQueue(ns, def.name, tier), msg.content, {
      ...msg.properties,
      expiration: String(waitMs),
      headers: {
        ...msg.properties.headers,
        [ATTEMPT_HEADER]: deferred ? attempt : attempt + 1,
        [FIRST_AT_HEADER]: since,
        [LAST_ERROR_HEADER]: describeError(err).slice(0, 500),
      },
      persistent: true,
    });
    retriedTotal.inc({ queue: def.name, tier: String(tier) });
    return { deferred, waitMs };
  };

  const handle = async (ch: Channel, acks: AckBatcher, msg: ConsumeMessage): Promise<void> => {
    const started = process.hrtime.bigint();
    const attempt = Number(msg.properties.headers?.[ATTEMPT_HEADER] ?? 1) || 1;
    const since = Number(msg.properties.headers?.[FIRST_AT_HEADER] ?? 0) || Date.now();
    const attemptsSpent = attempt >= maxAttempts;
    let lastAttempt = attemptsSpent;
    let budgetMs: number | undefined;
    let header: EnvelopeHeader | null = null;
    let outcome = 'ok';
    // The event's own logger, made when something is logged at a level that is on: most messages
    // log nothing, or only at debug.
    let bound: Logger | null = null;
    const mlog = (): Logger =>
      header
        ? (bound ??= lazyChild(log, {
            eventId: header.id,
            correlationId: header.correlationId,
            eventType: header.type,
          }))
        : log;
    try {
      let parsed: unknown;
      try {
        parsed = JSON.parse(msg.content.toString('utf8'));
      } catch (err) {
        throw new ValidationError('Message body is not JSON', [(err as Error).message], { cause: err });
      }
      // The event's own contract covers the envelope too, so a valid message is validated once; the
      // envelope alone is checked only to say why a message failed.
      const type = (parsed as { type?: unknown } | null)?.type;
      const contract =
        typeof type === 'string' && (def.events as readonly string[]).includes(type)
          ? contracts[type as T]
          : undefined;
      if (!contract?.validate(parsed)) {
        if (!validateHeader(parsed))
          throw new ValidationError(
            'Message is not a Postroom event envelope',
            formatErrors(validateHeader.errors),
          );
        header = parsed;
        if (!contract)
          throw new ValidationError('Unexpected event type for this consumer', [
            `/type: ${header.type} is not one of ${def.events.join(', ')}`,
          ]);
        throw new ValidationError(`Invalid ${header.type} event`, formatErrors(contract.validate.errors));
      }
      header = parsed as EnvelopeHeader;
      const event = parsed as AnyEvent;
      // A consumer with a time budget retries until the budget since the first attempt is spent,
      // however many attempts that takes (the last tier repeats); the others count attempts.
      budgetMs = typeof def.retryForMs === 'function' ? def.retryForMs(event as never) : def.retryForMs;
      if (budgetMs !== undefined) lastAttempt = Date.now() - since >= budgetMs;

      // A first delivery is almost never a repeat, and the inbox insert in the commit catches the
      // rare one (an outbox batch published twice): look the inbox up first only for redeliveries
      // and retries, where a repeat is likely and skipping the handler's work pays.
      const seen =
        msg.fields.redelivered || attempt > 1
          ? await db
              .selectFrom('inbox')
              .select('event_id')
              .where('consumer', '=', def.name)
              .where('event_id', '=', event.id)
              .executeTakeFirst()
          : undefined;
      if (seen) {
        outcome = 'duplicate';
        acks.ack(msg);
        return;
      }

      let committed = false;
      let duplicate = false;
      let unchanged = false;
      const ctx: HandlerContext<T> = {
        get log() {
          return mlog();
        },
        db,
        attempt,
        since,
        lastAttempt,
        current: event as never,
        unchanged: () => {
          unchanged = true;
        },
        event: (type, data) =>
          createEvent(type, data, { correlationId: event.correlationId, causationId: event.id }),
        commit: async (fn) => {
          if (committed) throw new Error('commit() called twice for one event');
          committed = true;
          if (batcher) {
            // Shares a transaction with other messages' commits (see CommitBatcher).
            const r = await batcher.commit(event.id, fn);
            if (r === DUPLICATE) duplicate = true;
            return r;
          }
          const staged: AnyEvent[] = [];
          const emit: Emit = (e) => staged.push(e);
          try {
            const result = await db.transaction().execute(async (trx) => {
              try {
                await trx
                  .insertInto('inbox')
                  .values({ consumer: def.name, event_id: event.id, processed_at: new Date() })
                  .execute();
              } catch (err) {
                if (isDuplicateKey(err)) throw new AlreadyProcessed();
                throw err;
              }
              const r = await fn(trx, emit);
              await enqueueEvents(trx, staged);
              return r;
            });
            if (staged.length > 0) signalOutbox();
            return result;
          } catch (err) {
            if (err instanceof AlreadyProcessed) {
              duplicate = true;
              return DUPLICATE;
            }
            throw err;
          }
        },
      };
      await def.handle(event as never, ctx);
      if (!committed && !unchanged && (await inbox.record(event.id))) duplicate = true;
      if (duplicate) outcome = 'duplicate';
      acks.ack(msg);
    } catch (err) {
      const permanent = !isRetryable(err);
      const reason = describeError(err);
      // The time budget covers the failures the consumer waits out (an outage); any other
      // retryable failure still has the attempts of the tiers.
      const outOfRetries =
        budgetMs !== undefined && (def.waitsOut?.(err) ?? true) ? lastAttempt : attemptsSpent;
      try {
        if (permanent || outOfRetries) {
          outcome = 'parked';
          const why = permanent ? reason : `gave up after ${attempt} attempts: ${reason}`;
          await park(msg, why, attempt, header, err instanceof PostroomError ? err.code : 'UNKNOWN');
          mlog().warn({ err, attempt }, 'message parked as dead letter');
        } else {
          outcome = 'retried';
          const { deferred, waitMs } = await retry(msg, attempt, since, err);
          if (deferred) outcome = 'deferred';
          mlog().info(
            { err, attempt, waitMs },
            deferred ? 'handler deferred the message; it comes back later' : 'handler failed; retrying later',
          );
        }
        acks.ack(msg);
      } catch (err2) {
        // Could neither retry nor park (broker or database down): leave the message to RabbitMQ,
        // which redelivers it when this channel closes or after the nack.
        outcome = 'error';
        mlog().error({ err: err2, cause: err }, 'could not retry or park message; returning it to the queue');
        await new Promise((r) => setTimeout(r, 1_000));
        try {
          acks.forget(msg);
          ch.nack(msg, false, true);
        } catch (err3) {
          mlog().debug({ err: err3 }, 'nack on a closed channel; RabbitMQ redelivers');
        }
      }
    } finally {
      consumedTotal.inc({ queue: def.name, outcome });
      handlerSeconds.observe({ queue: def.name, outcome }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  };

  const setup = async (model: ChannelModel) => {
    if (stopping) return;
    const ch = await model.createChannel();
    ch.on('error', (err: Error) => log.warn({ err }, 'consumer channel error'));
    ch.on('close', () => {
      if (channel !== ch) return;
      channel = null;
      channelAcks = null;
      // RabbitMQ closed this channel (an unknown delivery tag, a precondition failure) or the whole
      // connection went: the broker re-subscribes in the first case, the reconnect in the second.
      // Unacked messages go back to the queue; the inbox absorbs the repeats.
      if (!stopping) broker.recover(setup);
    });
    await ch.prefetch(def.prefetch ?? 16);
    const acks = new AckBatcher(ch, (err) =>
      log.warn({ err }, 'ack failed: channel closed; the messages will be redelivered and deduplicated'),
    );
    const reply = await ch.consume(queue, (msg) => {
      if (!msg) {
        // RabbitMQ cancelled the consumer (its queue was deleted, or its leader moved): closing the
        // channel re-subscribes through the close handler, on a new channel.
        log.warn({ queue }, 'consumer cancelled by RabbitMQ; re-subscribing');
        void ch.close().catch((err: unknown) => log.debug({ err }, 'close after cancel'));
        return;
      }
      acks.delivered(msg);
      const p = handle(ch, acks, msg).catch((err: unknown) =>
        log.error({ err }, 'unexpected error in consumer'),
      );
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    });
    channel = ch;
    channelAcks = acks;
    consumerTag = reply.consumerTag;
    broker.emit('channel-opened', { purpose: def.name, channel: ch });
    log.info({ queue, prefetch: def.prefetch ?? 16 }, 'consuming');
  };
  await broker.addSetup(setup);

  return {
    queue,
    async stop() {
      stopping = true;
      broker.removeSetup(setup);
      const ch = channel;
      if (ch && consumerTag)
        await ch.cancel(consumerTag).catch((err: unknown) => log.debug({ err }, 'cancel failed'));
      // Messages already delivered are finished, not returned, so a restart does not count against
      // their delivery limit.
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
      channelAcks?.flush();
      if (ch) await ch.close().catch((err: unknown) => log.debug({ err }, 'channel close after loss'));
      channel = null;
    },
  };
}

export { PermanentError, RetryableError };
