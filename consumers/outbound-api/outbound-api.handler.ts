import type { EventType } from '../../contracts/index.js';
import type { ConsumerDefinition, HandlerContext } from '../../infra/broker/handler.js';
import { enqueueEvents, signalOutbox } from '../../infra/broker/outbox.js';
import {
  callsOfEvent,
  insertPendingCalls,
  recordCallAttempt,
  reopenCall,
  type CallRow,
  type CallStatus,
} from '../../infra/db/repositories/outbound-calls.repository.js';
import { emailIdOf } from '../../infra/db/repositories/follow-ups.repository.js';
import { appendTimeline } from '../../infra/db/repositories/timeline.repository.js';
import { DeferredError, PermanentError, RetryableError } from '../../infra/errors.js';
import type { CircuitBreakers } from './circuit-breaker.js';
import { attemptHookCall, type AttemptResult, type HookClientOptions } from './hook-client.js';
import { HOOKABLE_EVENTS, hookMatches, type Hook } from './hooks-file.js';
import { outboundAttemptSeconds, outboundAttemptsTotal, outboundDeferredTotal } from './outbound-metrics.js';
import { idempotencyKey } from './signing.js';

/** Code of `last_error` for a call that ran out of retries; such a call is tried again on replay. */
export const GAVE_UP = 'OUTBOUND.GAVE_UP';

/** What the outbound consumer needs. */
export interface OutboundApiDeps {
  /** Hooks of HOOKS_FILE. */
  hooks: readonly Hook[];
  /** Address policy and resolver of the HTTP client. */
  client: HookClientOptions;
  /** Per-host circuit breakers, shared by every message of the process. */
  breakers: CircuitBreakers;
  /** Messages in flight at once (default 16). */
  prefetch?: number;
  /** Length of an hour of `maxRetryHours` in milliseconds (default 3 600 000; tests shorten it). */
  hourMs?: number;
}

/** A hook whose call must wait for a later delivery of the message, or that ran out of time. */
interface Waiting {
  why: string;
  retryAfterMs?: number;
  /** Not attempted: its circuit is open (the wait is not an attempt). */
  deferred?: boolean;
  /** Ran out of retry time: final, and the message is parked so a replay can try again. */
  gaveUp?: boolean;
}

const hostOf = (url: string) => new URL(url).host;

/**
 * Consumes every event a hook may name and calls the hooks of its type. Each (hook, event) pair is a
 * `calls` row, recorded `pending` on arrival; each try is a `call_attempts` row. A call that
 * succeeded, or failed for good (3xx, 4xx other than 429, a refused target), is never made again on
 * a redelivery; the others are retried with the message, through the runner's delay tiers, for the
 * hook's `maxRetryHours` since the message's first attempt (the last tier, an hour, repeats), then
 * marked `failed` and the message is parked (a replay tries them again). A call whose host circuit is
 * open is deferred, not attempted: the message comes back when the circuit may let it through,
 * without spending an attempt. Every final call publishes `outbound.completed` and, for an email,
 * adds to its timeline.
 */
export function createOutboundApiHandler(deps: OutboundApiDeps): ConsumerDefinition<EventType> {
  const byType = new Map<EventType, Hook[]>();
  for (const h of deps.hooks) for (const e of h.events) byType.set(e, [...(byType.get(e) ?? []), h]);
  const hosts = new Map(deps.hooks.map((h) => [h.name, hostOf(h.url)]));
  const hourMs = deps.hourMs ?? 3_600_000;
  const budgetMs = (h: Hook) => h.maxRetryHours * hourMs;
  const budgetOfType = new Map(
    [...byType].map(([type, hooks]) => [type, Math.max(0, ...hooks.map(budgetMs))] as const),
  );

  /** Records one attempt; on a final state also the completion event and the timeline, atomically. */
  const record = async (
    hook: Hook,
    call: CallRow,
    result: AttemptResult,
    status: CallStatus,
    error: string | null,
    ctx: HandlerContext,
  ) => {
    const emailId = call.email_id;
    const outcome = await ctx.db.transaction().execute(async (trx) => {
      const r = await recordCallAttempt(trx, call.id, {
        statusCode: result.statusCode,
        durationMs: result.durationMs,
        error,
        status,
      });
      if (!r.finalized) return r;
      const completed = ctx.event('outbound.completed', {
        hook: hook.name,
        sourceEventId: ctx.current.id,
        emailId,
        status: status === 'succeeded' ? 'succeeded' : 'failed',
        statusCode: result.statusCode,
        attempts: r.attempt,
      });
      await enqueueEvents(trx, [completed]);
      if (emailId) {
        const code = result.statusCode === null ? '' : ` (HTTP ${result.statusCode})`;
        await appendTimeline(trx, [
          {
            emailId,
            stage: 'outbound',
            event: 'outbound.completed',
            detail: `${hook.name}: ${status}${code} after ${r.attempt} attempt(s)${error ? `: ${error}` : ''}`,
          },
        ]);
      }
      return r;
    });
    if (outcome.finalized) signalOutbox();
    return outcome;
  };

  /** Runs one hook's call for the event: skipped when final, deferred by its circuit, or attempted. */
  const run = async (
    hook: Hook,
    call: CallRow,
    body: Buffer,
    ctx: HandlerContext,
  ): Promise<Waiting | null> => {
    const log = ctx.log.child({ hook: hook.name, callId: call.id });
    if (call.status === 'succeeded') return null;
    if (call.status === 'failed') {
      // Failed for good stays failed; a call that only ran out of retries is tried again when its
      // parked message is replayed (a replay starts again at attempt 1). Until then, it keeps the
      // message headed for parking.
      if (!call.last_error?.startsWith(GAVE_UP)) return null;
      if (ctx.attempt > 1) return { why: `${hook.name}: ${call.last_error}`, gaveUp: true };
      if (await reopenCall(ctx.db, call.id))
        log.info('replay: the call that ran out of retries is tried again');
    }
    const host = hosts.get(hook.name)!;
    const last = ctx.lastAttempt || Date.now() - ctx.since >= budgetMs(hook);
    // The last attempt goes through whatever the circuit says: a call is not given up on untried.
    // A call attempted before passes an open circuit (see CircuitBreakers).
    const permit = last
      ? ({ allowed: true, probe: false } as const)
      : deps.breakers.acquire(host, call.attempts > 0);
    if (!permit.allowed) {
      outboundDeferredTotal.inc({ hook: hook.name });
      log.info({ retryAfterMs: permit.retryAfterMs }, `call deferred: ${permit.reason}`);
      return { why: `${hook.name}: ${permit.reason}`, retryAfterMs: permit.retryAfterMs, deferred: true };
    }
    let result: AttemptResult | undefined;
    try {
      result = await attemptHookCall(
        hook,
        { body, idempotencyKey: call.idempotency_key, eventType: ctx.current.type },
        deps.client,
      );
    } finally {
      if (result?.host === 'up') deps.breakers.success(host);
      else if (result?.host === 'down') deps.breakers.failure(host, permit.probe);
      else deps.breakers.release(host, permit.probe);
    }
    if (result.outcome === 'retry' && result.retryAfterMs !== undefined)
      deps.breakers.hold(host, result.retryAfterMs);
    outboundAttemptsTotal.inc({ hook: hook.name, outcome: result.outcome });
    outboundAttemptSeconds.observe({ hook: hook.name }, result.durationMs / 1000);

    const gaveUp = result.outcome === 'retry' && last;
    const status: CallStatus =
      result.outcome === 'succeeded'
        ? 'succeeded'
        : result.outcome === 'failed' || gaveUp
          ? 'failed'
          : 'pending';
    const error = gaveUp ? `${GAVE_UP}: no attempts left after ${result.error}` : result.error;
    const r = await record(hook, call, result, status, error, ctx);
    const facts = { statusCode: result.statusCode, durationMs: result.durationMs, attempt: r.attempt };
    if (status === 'succeeded') log.info(facts, 'hook call succeeded');
    else if (status === 'failed') log.warn({ ...facts, error }, 'hook call failed for good');
    else
      log.info(
        { ...facts, error, retryAfterMs: result.retryAfterMs },
        'hook call failed; it will be retried',
      );
    if (status === 'succeeded' || (status === 'failed' && !gaveUp)) return null;
    return {
      why: gaveUp ? `${hook.name}: ${error}` : (error ?? 'failed'),
      ...(gaveUp ? { gaveUp } : {}),
      ...(result.retryAfterMs === undefined ? {} : { retryAfterMs: result.retryAfterMs }),
    };
  };

  return {
    name: 'outbound-api',
    events: HOOKABLE_EVENTS,
    prefetch: deps.prefetch ?? 16,
    // The message lives as long as its longest-lived hook; each call gives up at its own budget.
    retryForMs: (event) => budgetOfType.get(event.type) ?? 0,
    // Only failing or deferred calls are waited out; anything else (the database) has the tiers.
    waitsOut: (err) =>
      err instanceof RetryableError && (err.code === 'OUTBOUND.RETRY' || err.code === 'OUTBOUND.DEFERRED'),
    async handle(event, ctx) {
      const hooks = (byType.get(event.type) ?? []).filter((h) => hookMatches(h, event.data));
      if (hooks.length === 0) return;
      const emailId = emailIdOf(event);
      await insertPendingCalls(
        ctx.db,
        hooks.map((h) => ({
          hook: h.name,
          eventId: event.id,
          eventType: event.type,
          emailId,
          idempotencyKey: idempotencyKey(h.name, event.id),
        })),
      );
      const calls = await callsOfEvent(ctx.db, event.id);
      // The exact bytes sent, and signed, for every hook and attempt.
      const body = Buffer.from(JSON.stringify(event), 'utf8');
      const settled = await Promise.allSettled(hooks.map((h) => run(h, calls.get(h.name)!, body, ctx)));
      const failure = settled.find((s) => s.status === 'rejected');
      if (failure) throw failure.reason;
      const outcomes = settled.flatMap((s) => (s.status === 'fulfilled' && s.value ? [s.value] : []));
      const waiting = outcomes.filter((w) => !w.gaveUp);
      const gaveUp = outcomes.filter((w) => w.gaveUp);
      if (waiting.length === 0) {
        if (gaveUp.length === 0) return;
        throw new PermanentError(GAVE_UP, gaveUp.map((w) => w.why).join('; '), {
          details: { hooks: gaveUp.length },
        });
      }
      // One message carries every hook of the event, so it waits for the longest wait asked for.
      // Only when no call was attempted is it a deferral, which does not count as an attempt.
      const asked = waiting.flatMap((w) => (w.retryAfterMs === undefined ? [] : [w.retryAfterMs]));
      const why = waiting.map((w) => w.why).join('; ');
      const details = { details: { hooks: waiting.length } };
      if (waiting.every((w) => w.deferred))
        throw new DeferredError('OUTBOUND.DEFERRED', why, { retryAfterMs: Math.max(...asked), ...details });
      throw new RetryableError('OUTBOUND.RETRY', why, {
        ...(asked.length ? { retryAfterMs: Math.max(...asked) } : {}),
        ...details,
      });
    },
  };
}
