import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import got, { type Headers } from 'got';
import type { pinnedLookup } from './pinned-lookup.js';

// No keep-alive: a pooled socket would skip the address check of the next request to the same host.
const agents = { http: new HttpAgent({ keepAlive: false }), https: new HttpsAgent({ keepAlive: false }) };

/** One request to an outside service, made under the outbound rules. */
export interface CappedRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** Resolves only to the address already checked by the address policy (`pinnedLookup`). */
  lookup: ReturnType<typeof pinnedLookup>;
  /** Hard limit on the whole request, in ms. */
  timeoutMs: number;
  /** Answer bytes kept; the rest is not read (the stream is destroyed). */
  maxBodyBytes: number;
}

/** The answer: status, headers, at most `maxBodyBytes` of body, and whether more was sent. */
export interface CappedAnswer {
  statusCode: number;
  headers: Headers;
  body: Buffer;
  truncated: boolean;
}

/**
 * Sends one request the way every outbound call of Postroom is made (hook calls, scheduled polls):
 * connected to the checked address, no redirects followed, no retries of got's own, no keep-alive, a
 * hard time limit, and a bounded body, so a large or endless answer is never buffered. Rejects with
 * got's `RequestError` (timeout, network) or when the answer ends before its head.
 */
export function cappedRequest(req: CappedRequest): Promise<CappedAnswer> {
  return new Promise((resolve, reject) => {
    const stream = got.stream(req.url, {
      method: req.method as 'GET',
      ...(req.body ? { body: req.body } : {}),
      headers: req.headers,
      dnsLookup: req.lookup as never,
      agent: agents,
      http2: false,
      followRedirect: false,
      retry: { limit: 0 },
      throwHttpErrors: false,
      timeout: { request: Math.max(1, req.timeoutMs) },
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let head: { statusCode: number; headers: Headers } | null = null;
    let settled = false;
    const done = (truncated: boolean) => {
      if (settled || !head) return;
      settled = true;
      resolve({ ...head, body: Buffer.concat(chunks).subarray(0, req.maxBodyBytes), truncated });
    };
    stream.once('response', (res: { statusCode: number; headers: Headers }) => {
      head = { statusCode: res.statusCode, headers: res.headers };
    });
    stream.on('data', (chunk: Buffer) => {
      if (size < req.maxBodyBytes) chunks.push(chunk);
      size += chunk.length;
      if (size > req.maxBodyBytes && head) {
        // Enough read: a larger answer is not buffered.
        stream.destroy();
        done(true);
      }
    });
    stream.once('end', () => (head ? done(false) : reject(new Error('the response ended before its head'))));
    // Stays attached after the promise settles: a late error of a destroyed stream is dropped here.
    stream.on('error', (err) => {
      if (!settled) reject(err);
    });
  });
}
