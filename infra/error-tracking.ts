import type { Config } from './config.js';
import { SECRET_VARIABLES } from './config.js';
import type { Logger } from './logger.js';

/**
 * Error tracking with Sentry (`SENTRY_DSN`): unhandled errors, parked messages and failed jobs. Off and
 * free without a DSN: `@sentry/node` is not even imported. What is sent is scrubbed (see `scrubEvent`):
 * no secrets, tokens, mail bodies or attachment bytes leave the process.
 */

/** A message parked as a dead letter, as reported. */
export interface ParkedReport {
  /** The consumer (queue) that parked it. */
  consumer: string;
  /** Its event type, when it had a readable envelope. */
  eventType: string | null;
  /** The error code (`DRIVE.QUOTA_EXCEEDED`...). */
  code: string;
  /** The reason stored with the dead letter (no payload). */
  reason: string;
  /** The email it belongs to, for finding it in the console. */
  correlationId: string | null;
}

/** A scheduled job run that failed. */
export interface JobFailureReport {
  /** The job's name in SCHEDULES_FILE. */
  job: string;
  /** Its kind (`poll`, `digest`, `backup`, `retention`). */
  kind: string;
  /** The error. */
  error: unknown;
}

/** What the rest of the code calls; every method is a no-op until `startErrorTracking` ran with a DSN. */
export interface ErrorTracker {
  parked(report: ParkedReport): void;
  jobFailed(report: JobFailureReport): void;
  /** Sends what is queued (at shutdown); resolves within `timeoutMs`. */
  flush(timeoutMs?: number): Promise<void>;
}

const off: ErrorTracker = {
  parked: () => undefined,
  jobFailed: () => undefined,
  flush: async () => undefined,
};

let current: ErrorTracker = off;

/** The process's tracker (a no-op without `SENTRY_DSN`). */
export function errorTracker(): ErrorTracker {
  return current;
}

/** Header names whose values never leave the process. */
const SECRET_HEADERS =
  /^(authorization|cookie|set-cookie|x-api-key|x-telegram-bot-api-secret-token|proxy-authorization)$/i;
/** Keys whose values are payloads (mail bodies, attachment bytes, request bodies): dropped. */
const PAYLOAD_KEYS = /^(body|data|content|raw|text|html|bytes|buffer|attachments?)$/i;

/**
 * Removes secrets and payloads from anything about to be sent: every known secret value (the
 * variables of `SECRET_VARIABLES`, passwords in URLs) is replaced wherever it appears, secret headers
 * and payload-looking keys are dropped, and long strings are cut. Pure, so it is tested alone.
 */
export function scrubEvent<T>(event: T, secrets: readonly string[]): T {
  const values = secrets.filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
  const scrubString = (s: string): string => {
    let out = s.replace(/(\/\/[^:/@\s]*:)[^@/\s]+@/g, '$1[redacted]@');
    for (const v of values) out = out.split(v).join('[redacted]');
    out = out.replace(/\bBearer\s+[A-Za-z0-9._~+/-]+=*/g, 'Bearer [redacted]');
    out = out.replace(/\b\d{6,}:[A-Za-z0-9_-]{30,}\b/g, '[redacted bot token]');
    return out.length > 2_000 ? `${out.slice(0, 2_000)}…` : out;
  };
  const walk = (v: unknown, key: string, depth: number): unknown => {
    if (typeof v === 'string') return scrubString(v);
    if (v === null || typeof v !== 'object' || depth > 12) return v;
    if (Buffer.isBuffer(v) || ArrayBuffer.isView(v)) return '[bytes removed]';
    if (Array.isArray(v)) return v.map((x) => walk(x, key, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (SECRET_HEADERS.test(k)) out[k] = '[redacted]';
      else if (PAYLOAD_KEYS.test(k) && key !== 'contexts' && typeof x !== 'number') out[k] = '[removed]';
      else out[k] = walk(x, k, depth + 1);
    }
    return out;
  };
  return walk(event, '', 0) as T;
}

/** The secret values of a configuration (for `scrubEvent`). */
function secretValues(config: Config): string[] {
  const c = config as unknown as Record<string, unknown>;
  const out: string[] = [];
  for (const name of SECRET_VARIABLES) {
    const v = c[name];
    if (typeof v === 'string') out.push(...v.split(',').map((s) => s.trim()));
  }
  out.push(...config.apiTokens);
  for (const url of [config.AMQP_URL, config.MYSQL_URL]) {
    try {
      const p = decodeURIComponent(new URL(url).password);
      if (p) out.push(p);
    } catch {
      // not a URL: nothing to take
    }
  }
  return out.filter(Boolean);
}

/**
 * Starts error tracking when `SENTRY_DSN` is set: `@sentry/node` is loaded, errors the process does
 * not handle are reported by its default integrations, and `errorTracker()` starts reporting parked
 * messages and failed jobs. Without a DSN it does nothing and loads nothing.
 */
export async function startErrorTracking(config: Config, log: Logger): Promise<ErrorTracker> {
  if (!config.SENTRY_DSN) return off;
  const Sentry = await import('@sentry/node');
  const secrets = secretValues(config);
  Sentry.init({
    dsn: config.SENTRY_DSN,
    release: process.env['npm_package_version'],
    environment: process.env['NODE_ENV'] ?? 'production',
    serverName: `postroom ${config.roles.join(',')}`,
    // Nothing about users, requests or queries is collected; what is sent is scrubbed again below.
    dataCollection: {
      userInfo: false,
      cookies: false,
      httpHeaders: false,
      httpBodies: [],
      urlQueryParams: false,
      databaseQueryData: false,
    },
    // Errors only: no performance traces, no profiles, no logs.
    tracesSampleRate: 0,
    // Breadcrumbs would carry URLs and console lines of other work: leave them out.
    maxBreadcrumbs: 0,
    beforeSend: (event) => scrubEvent(event, secrets),
  });
  Sentry.setTag('roles', config.roles.join(','));
  log.info({ roles: config.roles }, 'error tracking on (SENTRY_DSN)');
  current = {
    parked(r) {
      Sentry.withScope((scope) => {
        scope.setLevel('error');
        scope.setTags({ consumer: r.consumer, event_type: r.eventType ?? 'unknown', code: r.code });
        if (r.correlationId) scope.setTag('correlation_id', r.correlationId);
        scope.setFingerprint(['parked', r.consumer, r.code]);
        Sentry.captureMessage(`Message parked by ${r.consumer}: ${r.code}: ${r.reason}`);
      });
    },
    jobFailed(r) {
      Sentry.withScope((scope) => {
        scope.setTags({ job: r.job, job_kind: r.kind });
        scope.setFingerprint(['job-failed', r.job]);
        Sentry.captureException(r.error);
      });
    },
    async flush(timeoutMs = 2_000) {
      await Sentry.flush(timeoutMs);
    },
  };
  return current;
}
