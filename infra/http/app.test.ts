/**
 * The request log line names the client the way HTTP_TRUST_PROXY lets Express read it: behind a
 * trusted proxy, the address the proxy put in X-Forwarded-For; otherwise the connection's own address,
 * whatever the header says. (The container smoke run checks the same line through NGINX.)
 */
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '../logger.js';
import { createApp } from './app.js';

/** Starts an app with a logger whose lines are collected, makes one request, returns its line. */
async function requestLine(
  trustProxy: string,
  headers: Record<string, string>,
): Promise<Record<string, unknown>> {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const { app } = createApp({
    log: createLogger('info', sink),
    readiness: [],
    openapi: () => ({}),
    trustProxy,
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/readyz`, {
      headers: { 'x-request-id': 'req-1', ...headers },
    });
    expect(res.status).toBe(200);
    // The line is written on the response's `finish`, which may come after the client has the answer.
    await vi.waitFor(() => expect(lines.some((l) => l['msg'] === 'request')).toBe(true));
  } finally {
    await new Promise((r) => server.close(r));
  }
  const line = lines.find((l) => l['msg'] === 'request' && l['requestId'] === 'req-1');
  expect(line).toBeDefined();
  return line!;
}

describe('request log line', () => {
  it('names the client a trusted proxy reports', async () => {
    const line = await requestLine('loopback', { 'x-forwarded-for': '203.0.113.5' });
    expect(line).toMatchObject({ method: 'GET', path: '/readyz', status: 200, remote: '203.0.113.5' });
  });

  it('names the connection itself when the sender of X-Forwarded-For is not trusted', async () => {
    const line = await requestLine('10.0.0.0/8', { 'x-forwarded-for': '203.0.113.5' });
    expect(line['remote']).toBe('127.0.0.1');
  });
});
