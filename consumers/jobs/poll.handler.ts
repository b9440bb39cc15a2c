import { createHash } from 'node:crypto';
import { RequestError } from 'got';
import { describeError, PermanentError, PostroomError, RetryableError } from '../../infra/errors.js';
import type { BlobStore } from '../../infra/blobs/blob-store.js';
import { resolveTarget, type Resolver } from '../../infra/outbound/address-policy.js';
import { cappedRequest, type CappedAnswer } from '../../infra/outbound/capped-request.js';
import { pinnedLookup } from '../../infra/outbound/pinned-lookup.js';
import type { JobRunner } from './jobs.handler.js';

/** Body bytes kept of an answer (SPEC.md): the rest is dropped unread and the answer marked truncated. */
export const POLL_MAX_BODY_BYTES = 1024 * 1024;

/** What the poll runner needs. */
export interface PollDeps {
  blobs: BlobStore;
  /** Normalized OUTBOUND_ALLOW_HOSTS: the same SSRF rules as the outbound calls. */
  allowHosts: ReadonlySet<string>;
  /** Name resolution (default: the system resolver). */
  resolve?: Resolver;
  /** Waits between attempts, in ms (default 1 s, 4 s, 16 s ...). */
  retryDelayMs?: (attempt: number) => number;
}

/** The URL without query or fragment (queries often carry keys). */
function safeUrl(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/**
 * `poll`: calls the job's API under the outbound calls' rules (http or https only, no private,
 * loopback or link-local address unless allow-listed, the address checked once and connected to as
 * checked, no redirects, a hard time limit per attempt) and retries 5xx, 429 and network errors a
 * few times. The answer (status, content type, up to 1 MiB of body as a blob, its SHA-256) is stored
 * and `api.polled` published with `changed`, in one transaction. A non-2xx answer is stored and
 * published too, but the run counts as failed.
 */
export function createPollRunner(deps: PollDeps): JobRunner {
  const delay = deps.retryDelayMs ?? ((attempt: number) => 1000 * 4 ** (attempt - 1));
  return async ({ def, runId, db, event, log }) => {
    const poll = def.poll;
    if (!poll) throw new PermanentError('JOB.CONFIG', `${def.name} has no url to poll`);
    let answer: CappedAnswer | null = null;
    let lastError = '';
    for (let attempt = 1; attempt <= poll.retries + 1; attempt++) {
      if (attempt > 1) await new Promise((r) => setTimeout(r, delay(attempt - 1)));
      const started = Date.now();
      try {
        const target = await resolveTarget(poll.url, {
          allowHosts: deps.allowHosts,
          resolve: deps.resolve,
          timeoutMs: poll.timeoutMs,
        });
        answer = await cappedRequest({
          url: poll.url,
          method: poll.method,
          headers: { 'user-agent': 'Postroom (poll)', ...poll.headers },
          lookup: pinnedLookup(target.address, target.family),
          timeoutMs: poll.timeoutMs - (Date.now() - started),
          maxBodyBytes: POLL_MAX_BODY_BYTES,
        });
        if (answer.statusCode !== 429 && answer.statusCode < 500) break;
        lastError = `POLL.HTTP_${answer.statusCode}: answered ${answer.statusCode}`;
      } catch (err) {
        if (err instanceof PostroomError && !err.retryable) throw err; // refused by the address policy
        lastError =
          err instanceof RequestError && err.name === 'TimeoutError'
            ? `POLL.TIMEOUT: no answer within ${poll.timeoutMs} ms`
            : `POLL.NETWORK: ${describeError(err)}`;
        answer = null;
      }
      log.warn({ attempt, error: lastError }, 'poll attempt failed');
    }
    if (!answer) throw new RetryableError('POLL.NO_ANSWER', `${safeUrl(poll.url)}: ${lastError}`);

    const got = answer;
    const sha256 = createHash('sha256').update(got.body).digest('hex');
    await deps.blobs.put(got.body);
    const previous = await db
      .selectFrom('polls')
      .select('body_sha256')
      .where('job', '=', def.name)
      .where('body_sha256', 'is not', null)
      .orderBy('polled_at', 'desc')
      .limit(1)
      .executeTakeFirst();
    const previousSha256 = previous?.body_sha256 ?? null;
    const changed = previousSha256 !== sha256;
    const contentType =
      typeof got.headers['content-type'] === 'string' ? got.headers['content-type'].slice(0, 255) : null;
    const ok = got.statusCode >= 200 && got.statusCode < 300;
    const detail = `${safeUrl(poll.url)} answered ${got.statusCode}, ${got.body.length} bytes${got.truncated ? ' (cut at 1 MiB)' : ''}, ${changed ? 'changed' : 'unchanged'}`;
    return {
      detail: ok ? detail : `POLL.HTTP_${got.statusCode}: ${detail}`,
      outcome: ok ? 'succeeded' : 'failed',
      async commit(trx, emit) {
        await trx
          .insertInto('polls')
          .values({
            run_id: runId,
            job: def.name,
            polled_at: new Date(),
            status_code: got.statusCode,
            content_type: contentType,
            body_sha256: sha256,
            body_size: got.body.length,
            changed: changed ? 1 : 0,
            error: null,
          })
          .execute();
        emit(
          event('api.polled', {
            job: def.name,
            runId,
            url: safeUrl(poll.url),
            statusCode: got.statusCode,
            contentType,
            sha256,
            size: got.body.length,
            truncated: got.truncated,
            changed,
            previousSha256,
          }),
        );
      },
    };
  };
}
