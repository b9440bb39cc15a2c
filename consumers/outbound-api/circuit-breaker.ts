import { backoffMs } from '../../infra/backoff.js';

/** State of one host's circuit. */
export type CircuitState = 'closed' | 'open' | 'half-open';

/** Options of the breakers. */
export interface CircuitBreakerOptions {
  /** Consecutive failures that open a host's circuit (default 5). */
  failureThreshold?: number;
  /** How long an open circuit refuses first attempts before one probe may go, in ms (default 30 s). */
  coolDownMs?: number;
  /** Each failed probe doubles the cool-down, up to this, in milliseconds (default 5 min). */
  maxCoolDownMs?: number;
  /** Clock (tests). */
  now?: () => number;
}

/** The answer to "may I call this host now?". */
export type Permit =
  | { allowed: true; /** True when this call is the half-open probe. */ probe: boolean }
  | {
      allowed: false;
      /** How long to wait before asking again, in milliseconds. */ retryAfterMs: number;
      reason: string;
    };

interface HostCircuit {
  state: CircuitState;
  failures: number;
  /** Failed probes in a row: each doubles the cool-down. */
  reopened: number;
  /** While open: when a probe may go. */
  openUntil: number;
  /** A Retry-After the host asked for: no call before this time, whatever the state. */
  holdUntil: number;
  probeInFlight: boolean;
}

/**
 * Per-host circuit breakers (in this process). `failureThreshold` consecutive failures (network
 * errors, timeouts, 5xx) open a host's circuit: first attempts of calls to it are refused at once (a
 * deferral, which the runner does not count as an attempt) until the cool-down ends, so their
 * messages wait instead of each spending a timeout against a dead host and holding up calls to other
 * hosts. Then one probe goes (half-open): success closes the circuit; failure keeps it open for
 * twice as long, up to `maxCoolDownMs`. A host that answered 429 or 503 with `Retry-After` is held
 * until then, retries included.
 *
 * Retries pass an open circuit. A call that was attempted before is already paced by its own
 * backoff (the retry tiers), so letting it through adds at most one request per such call and tier,
 * and their number is bounded by the calls that were in flight when the circuit opened plus one
 * probe per cool-down. Without this, a receiver that fails only first attempts (a cold cache, a
 * deduplicating gateway) keeps the circuit open for ever: every probe is a first attempt and fails,
 * and every deferred call waits behind it. With it, the retries succeed, close the circuit, and
 * every call arrives within a few tiers.
 */
export class CircuitBreakers {
  private readonly hosts = new Map<string, HostCircuit>();
  private readonly threshold: number;
  private readonly coolDownMs: number;
  private readonly maxCoolDownMs: number;
  private readonly now: () => number;

  constructor(opts: CircuitBreakerOptions = {}) {
    this.threshold = opts.failureThreshold ?? 5;
    this.coolDownMs = opts.coolDownMs ?? 30_000;
    this.maxCoolDownMs = Math.max(this.coolDownMs, opts.maxCoolDownMs ?? 300_000);
    this.now = opts.now ?? Date.now;
  }

  private get(host: string): HostCircuit {
    let c = this.hosts.get(host);
    if (!c) {
      c = { state: 'closed', failures: 0, reopened: 0, openUntil: 0, holdUntil: 0, probeInFlight: false };
      this.hosts.set(host, c);
    }
    return c;
  }

  /** The state of a host's circuit (an open one whose cool-down is over reads `half-open`). */
  state(host: string): CircuitState {
    const c = this.hosts.get(host);
    if (!c) return 'closed';
    if (c.state === 'open' && this.now() >= c.openUntil) return 'half-open';
    return c.state;
  }

  /**
   * Asks to call a host; `retry` says the call was attempted before (it then passes an open circuit).
   * A granted probe must be followed by `success`, `failure` or `release` with `probe` set.
   */
  acquire(host: string, retry = false): Permit {
    const c = this.get(host);
    const now = this.now();
    if (c.holdUntil > now)
      return {
        allowed: false,
        retryAfterMs: c.holdUntil - now,
        reason: `${host} asked to wait (Retry-After)`,
      };
    if (c.state === 'closed' || retry) return { allowed: true, probe: false };
    if (c.state === 'open' && now < c.openUntil)
      return {
        allowed: false,
        retryAfterMs: c.openUntil - now,
        reason: `circuit open for ${host} after ${c.failures} failures`,
      };
    if (c.probeInFlight)
      return {
        allowed: false,
        retryAfterMs: Math.min(this.coolDownMs, 1_000),
        reason: `circuit half-open for ${host}: a probe is in flight`,
      };
    c.state = 'half-open';
    c.probeInFlight = true;
    return { allowed: true, probe: true };
  }

  /** The host answered (any answer that is not a server failure): the circuit closes. */
  success(host: string): void {
    const c = this.get(host);
    c.state = 'closed';
    c.failures = 0;
    c.reopened = 0;
    c.probeInFlight = false;
  }

  /**
   * The host failed (network error, timeout, 5xx): counts toward opening a closed circuit; a failed
   * probe keeps the circuit open for a longer cool-down. A retry failing while the circuit is open
   * does not move the probe's time.
   */
  failure(host: string, probe = false): void {
    const c = this.get(host);
    c.failures += 1;
    if (probe && c.probeInFlight) {
      c.probeInFlight = false;
      c.reopened += 1;
      this.open(c);
    } else if (c.state === 'closed' && c.failures >= this.threshold) this.open(c);
  }

  private open(c: HostCircuit): void {
    c.state = 'open';
    c.openUntil =
      this.now() + backoffMs({ baseMs: this.coolDownMs, maxMs: this.maxCoolDownMs, jitter: 0 }, c.reopened);
  }

  /** A granted call ended without telling anything about the host (refused before connecting). */
  release(host: string, probe = false): void {
    const c = this.get(host);
    if (probe && c.probeInFlight) {
      c.probeInFlight = false;
      c.state = 'open';
    }
  }

  /** The host asked to be left alone for `ms` (Retry-After). */
  hold(host: string, ms: number): void {
    const c = this.get(host);
    c.holdUntil = Math.max(c.holdUntil, this.now() + ms);
  }
}
