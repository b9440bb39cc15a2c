/**
 * CONVERTER=gotenberg: `POST {GOTENBERG_URL}/forms/libreoffice/convert` with the document as the
 * multipart field `files`; Gotenberg answers with the PDF. Gotenberg converts one document at a time
 * per instance (it queues the rest and answers 503 when it gives up on one), so the convert role takes
 * one message at a time (prefetch 1) and the queue stays in RabbitMQ, where it is visible and durable.
 *
 * - The whole call, retries included, is bounded by the conversion time limit (the client timeout).
 * - 503 (busy, or its own time limit passed) is retried here a few times with a growing pause, then
 *   left to the consumer's retries (`RetryableError`), as are network errors and other 5xx.
 * - 400 and other 4xx mean the document was refused: a {@link ConversionFailed} with Gotenberg's words.
 * - User and password in the URL (`https://user:pass@host`) become a Basic `Authorization` header.
 */
import { RetryableError } from '../../infra/errors.js';
import {
  ConversionFailed,
  looksLikePdf,
  seconds,
  type ConversionInput,
  type Converter,
} from './converter.js';

/** Options of {@link createGotenbergConverter}. */
export interface GotenbergOptions {
  /** `GOTENBERG_URL`: the service's base URL. */
  url: string;
  /** Tries on 503 within one call (default 3). */
  attempts?: number;
  /** Pause before the second try, doubled for each next one (default 1000 ms). */
  backoffMs?: number;
}

/** The Gotenberg converter; see the module comment. */
export function createGotenbergConverter(options: GotenbergOptions): Converter {
  const base = new URL(options.url);
  const headers: Record<string, string> = {};
  if (base.username || base.password) {
    const credentials = `${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`;
    headers['Authorization'] = `Basic ${Buffer.from(credentials).toString('base64')}`;
    base.username = '';
    base.password = '';
  }
  const endpoint = new URL(
    'forms/libreoffice/convert',
    base.href.endsWith('/') ? base.href : `${base.href}/`,
  );
  const attempts = Math.max(1, options.attempts ?? 3);
  const backoffMs = options.backoffMs ?? 1000;

  return {
    name: 'gotenberg',
    async convert(input: ConversionInput, timeoutMs: number): Promise<Buffer> {
      const signal = AbortSignal.timeout(timeoutMs);
      let last = '';
      for (let attempt = 1; attempt <= attempts; attempt++) {
        const form = new FormData();
        form.append('files', new Blob([input.bytes]), `document.${input.extension}`);
        let res: Response;
        try {
          res = await fetch(endpoint, { method: 'POST', body: form, headers, signal, redirect: 'error' });
        } catch (err) {
          if (signal.aborted) throw timedOut(timeoutMs, err);
          throw new RetryableError(
            'CONVERT.GOTENBERG_UNREACHABLE',
            `Gotenberg at ${endpoint.host} could not be reached`,
            {
              cause: err,
            },
          );
        }
        let body: Buffer;
        try {
          body = Buffer.from(await res.arrayBuffer());
        } catch (err) {
          if (signal.aborted) throw timedOut(timeoutMs, err);
          throw new RetryableError('CONVERT.GOTENBERG_UNREACHABLE', 'the answer of Gotenberg broke off', {
            cause: err,
          });
        }
        if (res.ok) {
          if (!looksLikePdf(body))
            throw new RetryableError(
              'CONVERT.GOTENBERG_BAD_ANSWER',
              `Gotenberg answered ${res.status} without a PDF`,
            );
          return body;
        }
        const detail = body.toString('utf8').replace(/\s+/g, ' ').trim().slice(0, 200);
        if (res.status === 503) {
          last = detail;
          if (attempt < attempts) {
            const pause = backoffMs * 2 ** (attempt - 1);
            if (!(await sleep(pause, signal))) throw timedOut(timeoutMs, null);
            continue;
          }
          throw new RetryableError(
            'CONVERT.GOTENBERG_BUSY',
            `Gotenberg answered 503 ${attempts} times (${last || 'no detail'})`,
          );
        }
        if (res.status >= 400 && res.status < 500)
          throw new ConversionFailed(
            'CONVERT.FAILED',
            `Gotenberg could not convert the document (${res.status}${detail ? `: ${detail}` : ''}).`,
          );
        throw new RetryableError(
          'CONVERT.GOTENBERG_FAILED',
          `Gotenberg answered ${res.status} (${detail || 'no detail'})`,
        );
      }
      throw new RetryableError('CONVERT.GOTENBERG_BUSY', `Gotenberg answered 503 (${last})`);
    },
  };
}

function timedOut(timeoutMs: number, cause: unknown): ConversionFailed {
  return new ConversionFailed(
    'CONVERT.TIMEOUT',
    `The conversion took longer than the ${seconds(timeoutMs)} limit and was abandoned; the document may be damaged or unusually complex.`,
    cause,
  );
}

/** Waits `ms`; false when `signal` aborted first. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
