/** State of one host's circuit. */
export type CircuitState = 'closed' | 'open' | 'half-open';

/** Options of the breakers. */
export interface CircuitBreakerOptions {
  /** Consecutive failures that open a host's circuit (default 5). */
  failureThreshold?: number;
  /** How long an open circuit refuses calls before one probe may go, in milliseconds (default 30 s). */
  coolDownMs?: number;
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
  /** While open: when a probe may go. */
  openUntil: number;
  /** A Retry-After the host asked for: no call before this time, whatever the state. */
  holdUntil: number;
  probeInFlight: boolean;
}

/**
 * Per-host circuit breakers (in this process). `failureThreshold` consecutive failures (network
 * errors, timeouts, 5xx) open a host's circuit: calls to it are refused at once for `coolDownMs`, so
 * its messages wait in a retry tier instead of holding up calls to other hosts. After the cool-down
 * one probe goes through (half-open): success closes the circuit, failure opens it again. A host that
 * answered 429 or 503 with `Retry-After` is held until then too.
 */
export class CircuitBreakers {
  private readonly hosts = new Map<string, HostCircuit>();
  private readonly threshold: number;
  private readonly coolDownMs: number;
  private readonly now: () => number;

  constructor(opts: CircuitBreakerOptions = {}) {
    this.threshold = opts.failureThreshold ?? 5;
    this.coolDownMs = opts.coolDownMs ?? 30_000;
    this.now = opts.now ?? Date.now;
  }

  private get(host: string): HostCircuit {
    let c = this.hosts.get(host);
    if (!c) {
      c = { state: 'closed', failures: 0, openUntil: 0, holdUntil: 0, probeInFlight: false };
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

  /** Asks to call a host; a granted probe must be followed by `success` or `failure`. */
  acquire(host: string): Permit {
    const c = this.get(host);
    const now = this.now();
    if (c.holdUntil > now)
      return {
        allowed: false,
        retryAfterMs: c.holdUntil - now,
        reason: `${host} asked to wait (Retry-After)`,
      };
    if (c.state === 'closed') return { allowed: true, probe: false };
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
    c.probeInFlight = false;
  }

  /** The host failed (network error, timeout, 5xx): counts toward opening; a failed probe reopens. */
  failure(host: string): void {
    const c = this.get(host);
    c.failures += 1;
    c.probeInFlight = false;
    if (c.state === 'half-open' || c.failures >= this.threshold) {
      c.state = 'open';
      c.openUntil = this.now() + this.coolDownMs;
    }
  }

  /** A granted call ended without telling anything about the host (refused before connecting). */
  release(host: string): void {
    const c = this.get(host);
    if (c.probeInFlight) {
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
