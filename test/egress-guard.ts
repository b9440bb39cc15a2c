import dc from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';

/**
 * Stops, and records, every HTTP(S) request this process starts to a host other than loopback, so a
 * test fails at once, naming the URL, instead of waiting for a network that is not there. Covers
 * node:http/https (what gaxios' node-fetch uses) and records global `fetch` (undici) attempts.
 */
export function guardEgress(): { blocked: string[]; dispose(): void } {
  const blocked: string[] = [];
  const loopback = (host: string) => /^(127\.|localhost$|\[?::1\]?$)/.test(host);
  const onHttp = (message: unknown) => {
    const request = (message as { request: ClientRequest }).request;
    if (loopback(request.host)) return;
    blocked.push(`${request.method} ${request.protocol}//${request.host}${request.path}`);
    request.destroy(new Error(`egress blocked by test guard: ${request.host}`));
  };
  const onFetch = (message: unknown) => {
    const r = (message as { request: { origin: string; path: string; method: string } }).request;
    if (!loopback(new URL(r.origin).hostname)) blocked.push(`${r.method} ${r.origin}${r.path}`);
  };
  dc.subscribe('http.client.request.start', onHttp);
  dc.subscribe('undici:request:create', onFetch);
  return {
    blocked,
    dispose() {
      dc.unsubscribe('http.client.request.start', onHttp);
      dc.unsubscribe('undici:request:create', onFetch);
    },
  };
}
