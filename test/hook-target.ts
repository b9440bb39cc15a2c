import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request a hook target received, as it arrived. */
export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body bytes. */
  body: Buffer;
  /** `Date.now()` when the request head arrived. */
  at: number;
}

/** How the target answers one request: a status, headers and body, after an optional delay. */
export interface TargetReply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Milliseconds to wait before answering. */
  delayMs?: number;
}

/** A fake outbound-hook receiver on 127.0.0.1, as a third-party API would be. */
export interface HookTarget {
  port: number;
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** Requests received, in order. */
  requests: ReceivedRequest[];
  /** TCP connections accepted (0 proves nothing reached it). */
  connections(): number;
  /** Sets how the next requests are answered, in order; the last one repeats. */
  reply(...replies: (TargetReply | ((req: ReceivedRequest) => TargetReply))[]): void;
  close(): Promise<void>;
}

/** Starts a hook target on 127.0.0.1 (a free port); answers 200 until told otherwise. */
export async function startHookTarget(): Promise<HookTarget> {
  const requests: ReceivedRequest[] = [];
  let replies: (TargetReply | ((req: ReceivedRequest) => TargetReply))[] = [
    { status: 200, body: '{"ok":true}' },
  ];
  let connections = 0;
  const pending = new Set<NodeJS.Timeout>();
  const server = createServer((req, res: ServerResponse) => {
    const at = Date.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: ReceivedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
        at,
      };
      requests.push(r);
      const next = replies.length > 1 ? replies.shift()! : replies[0]!;
      const reply = typeof next === 'function' ? next(r) : next;
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(reply.status, { 'content-type': 'text/plain', ...reply.headers });
        res.end(reply.body ?? '');
      };
      if (reply.delayMs) {
        const timer = setTimeout(() => {
          pending.delete(timer);
          send();
        }, reply.delayMs);
        pending.add(timer);
      } else send();
    });
  });
  server.on('connection', () => {
    connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    connections: () => connections,
    reply: (...r) => {
      replies = r;
    },
    async close() {
      for (const t of pending) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Verifies `X-Postroom-Signature` the way a receiver would (SPEC.md): HMAC-SHA256 over
 * `<t>.<raw body>` with the shared secret, compared in constant time.
 */
export function verifySignature(
  header: string | undefined,
  body: Buffer,
  secret: string,
): { ok: boolean; t: number } {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return { ok: false, t: 0 };
  const expected = createHmac('sha256', secret).update(`${m[1]}.`).update(body).digest();
  return { ok: timingSafeEqual(expected, Buffer.from(m[2]!, 'hex')), t: Number(m[1]) };
}
