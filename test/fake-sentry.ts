/**
 * A local receiver of Sentry envelopes, written from Sentry's envelope documentation: the SDK POSTs
 * `/api/<project>/envelope/` with a body of newline-separated JSON (an envelope header, then for each
 * item an item header and its payload), gzip-compressed when large. It keeps each raw body (to check
 * what left the process) and each event item.
 */
import { createServer, type Server } from 'node:http';
import { gunzipSync, inflateSync } from 'node:zlib';

/** One `event` item as received. */
export interface SentryEvent {
  message?: string | { formatted?: string };
  level?: string;
  tags?: Record<string, string>;
  exception?: { values?: Array<{ type?: string; value?: string }> };
  [key: string]: unknown;
}

/** The receiver: its DSN, what it got, and `close()`. */
export interface FakeSentry {
  /** `http://public@127.0.0.1:<port>/1`. */
  dsn: string;
  /** Every request body, decompressed, as text. */
  raw: string[];
  /** Every event item (errors and messages). */
  events: SentryEvent[];
  close(): Promise<void>;
}

export async function startFakeSentry(): Promise<FakeSentry> {
  const raw: string[] = [];
  const events: SentryEvent[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || !/^\/api\/[^/]+\/envelope\/?(\?.*)?$/.test(req.url ?? '')) {
        res.writeHead(404).end();
        return;
      }
      let body = Buffer.concat(chunks);
      const encoding = req.headers['content-encoding'];
      if (encoding === 'gzip') body = gunzipSync(body);
      else if (encoding === 'deflate') body = inflateSync(body);
      const text = body.toString('utf8');
      raw.push(text);
      const lines = text.split('\n');
      // lines[0] is the envelope header; then header/payload pairs.
      for (let i = 1; i + 1 < lines.length; i += 2) {
        const header = JSON.parse(lines[i] ?? '{}') as { type?: string };
        if (header.type === 'event') events.push(JSON.parse(lines[i + 1] ?? '{}') as SentryEvent);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    dsn: `http://public@127.0.0.1:${port}/1`,
    raw,
    events,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
