import { startConsumer } from '../../infra/broker/consume.js';
import { registerHooks } from '../../infra/db/repositories/follow-ups.repository.js';
import type { RoleContext, RoleHandle } from '../../infra/roles.js';
import { normalizeHost, type Resolver } from '../../infra/outbound/address-policy.js';
import { CircuitBreakers, type CircuitBreakerOptions } from './circuit-breaker.js';
import { safeUrl } from './hook-client.js';
import { loadHooksFile } from './hooks-file.js';
import { createOutboundApiHandler } from './outbound-api.handler.js';

/** Overrides for tests: a resolver instead of the system one, faster circuit breakers. */
export interface OutboundApiOptions {
  /** Name resolution for hook hosts (default: the system resolver). */
  resolve?: Resolver;
  /** Circuit breaker thresholds (default: 5 failures open a host for 30 s). */
  breaker?: CircuitBreakerOptions;
  /** Length of an hour of `maxRetryHours` in ms (default 3 600 000): tests of long outages shorten it. */
  hourMs?: number;
}

/**
 * Starts the outbound consumer (role `outbound`): loads and validates HOOKS_FILE (a `ConfigError`
 * names each problem), registers them (so every event's calls are recorded with the event, see
 * `recordFollowUps`) and calls them. Null, with a log line, when HOOKS_FILE is not set (no hooks are
 * registered then).
 */
export async function startOutboundApi(
  ctx: RoleContext,
  opts: OutboundApiOptions = {},
): Promise<RoleHandle | null> {
  if (!ctx.config.HOOKS_FILE) {
    ctx.log.info('outbound role: HOOKS_FILE is not set; no hooks are called');
    await registerHooks(ctx.db, []);
    return null;
  }
  const hooks = loadHooksFile(ctx.config.HOOKS_FILE);
  const allowHosts = new Set(ctx.config.outboundAllowHosts.map(normalizeHost));
  if (hooks.length === 0)
    ctx.log.warn(
      { file: ctx.config.HOOKS_FILE },
      'HOOKS_FILE lists no hooks; events are consumed and dropped',
    );
  ctx.log.info(
    {
      hooks: hooks.map((h) => ({
        name: h.name,
        url: safeUrl(h.url),
        events: h.events,
        signed: h.secret !== null,
      })),
      allowHosts: [...allowHosts],
    },
    'calling outbound hooks',
  );
  await registerHooks(ctx.db, hooks);
  const def = createOutboundApiHandler({
    hooks,
    client: { allowHosts, ...(opts.resolve ? { resolve: opts.resolve } : {}) },
    breakers: new CircuitBreakers(opts.breaker),
    ...(opts.hourMs === undefined ? {} : { hourMs: opts.hourMs }),
  });
  return startConsumer(def, ctx);
}
