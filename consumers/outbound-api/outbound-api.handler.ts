import type { AnyEvent, EventType } from '../../contracts/index.js';
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
import { appendTimeline } from '../../infra/db/repositories/timeline.repository.js';
import { RetryableError } from '../../infra/errors.js';
import type { CircuitBreakers } from './circuit-breaker.js';
import { attemptHookCall, type AttemptResult, type HookClientOptions } from './hook-client.js';
import { HOOKABLE_EVENTS, type Hook } from './hooks-file.js';
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
}

/** A hook whose call must wait for a later delivery of the message. */
interface Waiting {
  why: string;
  retryAfterMs?: number;
}

/** The email an event belongs to: `data.emailId` where the event has one. */
export function emailIdOf(event: AnyEvent): string | null {
  const id = (event.data as { emailId?: unknown }).emailId;
  return typeof id === 'string' ? id : null;
}

const hostOf = (url: string) => new URL(url).host;

/**
 * Consumes every event a hook may name and calls the hooks of its type. Each (hook, event) pair is a
 * `calls` row, recorded `pending` on arrival; each try is a `call_attempts` row. A call that
 * succeeded, or failed for good (3xx, 4xx other than 429, a refused target), is never made again on
 * a redelivery; the others are retried with the message, through the runner's delay tiers, and
 * marked `failed` on its last attempt, after which the message is parked (a replay tries them again).
 * Every final call publishes `outbound.completed` and, for an email, adds to its timeline.
 */
export function createOutboundApiHandler(deps: OutboundApiDeps): ConsumerDefinition<EventType> {
  const byType = new Map<EventType, Hook[]>();
  for (const h of deps.hooks) for (const e of h.events) byType.set(e, [...(byType.get(e) ?? []), h]);
  const hosts = new Map(deps.hooks.map((h) => [h.name, hostOf(h.url)]));

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
      // parked message is replayed.
      if (!call.last_error?.startsWith(GAVE_UP)) return null;
      if (await reopenCall(ctx.db, call.id))
        log.info('replay: the call that ran out of retries is tried again');
    }
    const host = hosts.get(hook.name)!;
    // The last attempt goes through whatever the circuit says: a call is not given up on untried.
    const permit = ctx.lastAttempt ? ({ allowed: true, probe: false } as const) : deps.breakers.acquire(host);
    if (!permit.allowed) {
      outboundDeferredTotal.inc({ hook: hook.name });
      log.info({ retryAfterMs: permit.retryAfterMs }, `call deferred: ${permit.reason}`);
      return { why: `${hook.name}: ${permit.reason}`, retryAfterMs: permit.retryAfterMs };
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
      else if (result?.host === 'down') deps.breakers.failure(host);
      else deps.breakers.release(host);
    }
    if (result.outcome === 'retry' && result.retryAfterMs !== undefined)
      deps.breakers.hold(host, result.retryAfterMs);
    outboundAttemptsTotal.inc({ hook: hook.name, outcome: result.outcome });
    outboundAttemptSeconds.observe({ hook: hook.name }, result.durationMs / 1000);

    const gaveUp = result.outcome === 'retry' && ctx.lastAttempt;
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
      why: error ?? 'failed',
      ...(result.retryAfterMs === undefined ? {} : { retryAfterMs: result.retryAfterMs }),
    };
  };

  return {
    name: 'outbound-api',
    events: HOOKABLE_EVENTS,
    prefetch: deps.prefetch ?? 16,
    async handle(event, ctx) {
      const hooks = byType.get(event.type) ?? [];
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
      const waiting = settled.flatMap((s) => (s.status === 'fulfilled' && s.value ? [s.value] : []));
      if (waiting.length === 0) return;
      // One message carries every hook of the event, so it waits for the longest wait asked for.
      const asked = waiting.flatMap((w) => (w.retryAfterMs === undefined ? [] : [w.retryAfterMs]));
      throw new RetryableError('OUTBOUND.RETRY', waiting.map((w) => w.why).join('; '), {
        ...(asked.length ? { retryAfterMs: Math.max(...asked) } : {}),
        details: { hooks: waiting.length },
      });
    },
  };
}
