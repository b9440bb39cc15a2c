import { RequestError, type Headers } from 'got';
import { describeError, PostroomError } from '../../infra/errors.js';
import { resolveTarget, type Resolver } from '../../infra/outbound/address-policy.js';
import { cappedRequest } from '../../infra/outbound/capped-request.js';
import { pinnedLookup } from '../../infra/outbound/pinned-lookup.js';
import type { Hook } from './hooks-file.js';
import { parseRetryAfter, signatureHeader } from './signing.js';

/** How one attempt ended, as the handler records it. */
export interface AttemptResult {
  /** `succeeded` (2xx), `retry` (5xx, 429, network, timeout, DNS) or `failed` (final: other answers, refusals). */
  outcome: 'succeeded' | 'retry' | 'failed';
  /** HTTP status, or null when there was no answer. */
  statusCode: number | null;
  /** `CODE: why` for anything but a success (no secrets, no URL query). */
  error: string | null;
  /** What the target asked for with `Retry-After`, in milliseconds. */
  retryAfterMs?: number;
  /** Wall time of the attempt, lookup included. */
  durationMs: number;
  /** How the attempt bears on the host's circuit: it answered, it failed, or it was never reached. */
  host: 'up' | 'down' | 'untouched';
}

/** What the client needs besides the hook. */
export interface HookClientOptions {
  /** Normalized OUTBOUND_ALLOW_HOSTS. */
  allowHosts: ReadonlySet<string>;
  /** Name resolution (default: the system resolver); called once per attempt. */
  resolve?: Resolver;
  /** Clock for the signature timestamp (tests). */
  now?: () => number;
}

/** One request to send: the serialized envelope and the headers that stay the same across retries. */
export interface HookRequest {
  /** The exact bytes sent, and signed. */
  body: Buffer;
  idempotencyKey: string;
  /** Event type, sent as `X-Postroom-Event`. */
  eventType: string;
}

/** Bytes of a response body read at most (kept for the error text); the rest is dropped unread. */
const MAX_BODY_BYTES = 64 * 1024;
/** Status texts kept in `last_error`, at most. */
const MAX_SNIPPET = 200;

/** The URL without query or fragment, for messages (queries often carry tokens). */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '<invalid url>';
  }
}

const textOf = (body: Buffer) =>
  body
    .toString('utf8', 0, Math.min(body.length, MAX_SNIPPET))
    .replace(/[\r\n\t]+/g, ' ')
    .trim();

/** Classifies an answer. 2xx succeeded; 429 and 5xx retry; 3xx (never followed) and other 4xx are final. */
function classify(
  statusCode: number,
  headers: Headers,
  body: Buffer,
  hook: Hook,
  durationMs: number,
): AttemptResult {
  const base = { statusCode, durationMs };
  if (statusCode >= 200 && statusCode < 300)
    return { ...base, outcome: 'succeeded', error: null, host: 'up' };
  const snippet = textOf(body);
  const said = snippet ? `: ${snippet}` : '';
  if (statusCode === 429 || statusCode >= 500) {
    const retryAfterMs = parseRetryAfter(headers['retry-after']);
    return {
      ...base,
      outcome: 'retry',
      error: `OUTBOUND.HTTP_${statusCode}: ${hook.name} answered ${statusCode}${retryAfterMs === undefined ? '' : ` (Retry-After ${Math.ceil(retryAfterMs / 1000)} s)`}${said}`,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      host: statusCode === 429 ? 'up' : 'down',
    };
  }
  if (statusCode >= 300 && statusCode < 400) {
    let location = 'nowhere';
    if (typeof headers.location === 'string') {
      try {
        location = safeUrl(new URL(headers.location, hook.url).toString());
      } catch {
        location = 'an invalid location';
      }
    }
    return {
      ...base,
      outcome: 'failed',
      error: `OUTBOUND.REDIRECT: ${hook.name} answered ${statusCode} to ${location}; redirects are not followed`,
      host: 'up',
    };
  }
  return {
    ...base,
    outcome: 'failed',
    error: `OUTBOUND.HTTP_${statusCode}: ${hook.name} answered ${statusCode}${said}`,
    host: 'up',
  };
}

/** Describes a got or network error as `CODE: why`; all of them are worth a retry. */
function networkError(hook: Hook, err: unknown): string {
  if (err instanceof RequestError) {
    if (err.name === 'TimeoutError')
      return `OUTBOUND.TIMEOUT: ${hook.name} did not answer within ${hook.timeoutMs} ms`;
    return `OUTBOUND.NETWORK: ${hook.name}: ${err.code ?? err.name} ${err.message}`.slice(0, 500);
  }
  return `OUTBOUND.NETWORK: ${hook.name}: ${describeError(err)}`.slice(0, 500);
}

/**
 * Makes one attempt of a hook call: checks the target (scheme, every resolved address, allow list),
 * then sends the envelope to exactly the checked address with got, signed when the hook has a
 * secret, with a hard time limit covering lookup, connection, request and answer, no got retries and
 * no redirects. Never throws: every way an attempt can end is an `AttemptResult`.
 */
export async function attemptHookCall(
  hook: Hook,
  req: HookRequest,
  opts: HookClientOptions,
): Promise<AttemptResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  let target;
  try {
    target = await resolveTarget(hook.url, {
      allowHosts: opts.allowHosts,
      resolve: opts.resolve,
      timeoutMs: hook.timeoutMs,
    });
  } catch (err) {
    const retryable = err instanceof PostroomError ? err.retryable : true;
    return {
      outcome: retryable ? 'retry' : 'failed',
      statusCode: null,
      error: describeError(err),
      durationMs: elapsed(),
      host: retryable ? 'down' : 'untouched',
    };
  }
  const headers: Record<string, string> = {
    ...hook.headers,
    'content-type': 'application/json',
    'user-agent': 'Postroom (outbound hooks)',
    'idempotency-key': req.idempotencyKey,
    'x-postroom-event': req.eventType,
  };
  if (hook.secret) {
    const t = Math.floor((opts.now ?? Date.now)() / 1000);
    headers['x-postroom-signature'] = signatureHeader(hook.secret, req.body, t);
  }
  try {
    const res = await cappedRequest({
      url: hook.url,
      method: hook.method,
      headers,
      body: req.body,
      lookup: pinnedLookup(target.address, target.family),
      timeoutMs: hook.timeoutMs - elapsed(),
      maxBodyBytes: MAX_BODY_BYTES,
    });
    return classify(res.statusCode, res.headers, res.body, hook, elapsed());
  } catch (err) {
    return {
      outcome: 'retry',
      statusCode: null,
      error: networkError(hook, err),
      durationMs: elapsed(),
      host: 'down',
    };
  }
}
