/** An exponential backoff: `baseMs * factor^n`, capped at `maxMs`, spread by jitter. */
export interface Backoff {
  /** The first wait in milliseconds (n = 0). */
  baseMs: number;
  /** Growth per step (default 2). */
  factor?: number;
  /** Longest wait in milliseconds, before jitter. */
  maxMs: number;
  /**
   * Share of the wait that is random (default 0.5): the wait is drawn from
   * `[(1 - jitter) * d, d]`, so many callers that failed together do not come back together, and no
   * wait ever exceeds the cap.
   */
  jitter?: number;
}

/**
 * The one backoff formula of the code base (reconnects, in-call retries, retry tiers). `n` counts
 * earlier failures from 0; `floorMs` is a wait the other side asked for (a `Retry-After`), which the
 * result never undercuts.
 */
export function backoffMs(b: Backoff, n: number, floorMs = 0, random: () => number = Math.random): number {
  const d = Math.min(b.maxMs, b.baseMs * (b.factor ?? 2) ** Math.max(0, n));
  const jitter = Math.min(1, Math.max(0, b.jitter ?? 0.5));
  return Math.max(d * (1 - jitter * random()), floorMs);
}

/** The steps of a backoff without jitter, from n = 0 until the cap (the cap included once). */
export function backoffSteps(b: Backoff): number[] {
  const steps: number[] = [];
  for (let n = 0; steps.at(-1) !== b.maxMs && n < 64; n++)
    steps.push(Math.min(b.maxMs, b.baseMs * (b.factor ?? 2) ** n));
  return steps;
}
