/**
 * A fake Gotenberg 8, written from its API reference (gotenberg.dev, "LibreOffice" and "Health" routes),
 * for the `gotenberg` converter's tests:
 *
 * - `POST /forms/libreoffice/convert`, `multipart/form-data` with one or more `files` parts: answers
 *   200 with `Content-Type: application/pdf`, `Content-Disposition: attachment; filename="<trace>.pdf"`
 *   and a `Gotenberg-Trace` header. A form without a `files` part, or with a file whose extension
 *   LibreOffice does not take, gets 400 `Invalid form data: ...`. A file LibreOffice cannot load (here:
 *   an Office Open XML or OpenDocument name whose bytes are not a zip) gets 400 as Gotenberg gives it.
 * - 503 `Service Unavailable` when the conversion passes the API time limit (`--api-timeout`, 30 s by
 *   default) or the instance is busy: scripted here with {@link FakeGotenberg.failNext}.
 * - With `--api-enable-basic-auth`, requests without the right `Authorization: Basic` get 401.
 * - `GET /health`: `{"status":"up"}`.
 *
 * Instead of LibreOffice's rendering, the PDF holds one line of text: the file name and its size in bytes, so a
 * test can read back what was sent (`pdftotext`).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pdf } from './file-fixtures.js';

/** Extensions Gotenberg's LibreOffice route accepts (a subset of the reference's list). */
const ACCEPTED = new Set(
  'doc docx docm dot dotx odt ott rtf txt xls xlsx xlsm ods ots csv ppt pptx pptm odp otp odg html'.split(
    ' ',
  ),
);
const ZIP_BASED = new Set('docx docm dotx xlsx xlsm pptx pptm odt ott ods ots odp otp odg'.split(' '));

/** One conversion request as it arrived. */
export interface GotenbergRequest {
  /** The `files` parts: name and bytes. */
  files: { name: string; bytes: Buffer }[];
  /** Other form fields. */
  fields: Record<string, string>;
  authorization: string | undefined;
}

/** The fake; see the module comment. */
export class FakeGotenberg {
  /** Conversion requests received, in order (those answered with scripted failures too). */
  readonly requests: GotenbergRequest[] = [];
  private failures: { status: number; times: number }[] = [];
  private hanging = false;
  private readonly pending = new Set<ServerResponse>();

  private constructor(
    private readonly server: ReturnType<typeof createServer>,
    /** `http://127.0.0.1:<port>` */
    readonly url: string,
    private readonly basicAuth: string | null,
  ) {}

  /** Starts on 127.0.0.1 (a free port); with `auth`, Basic authentication is required. */
  static async start(auth?: { user: string; password: string }): Promise<FakeGotenberg> {
    let fake: FakeGotenberg | null = null;
    const server = createServer((req, res) => void fake?.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const basic = auth ? `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}` : null;
    fake = new FakeGotenberg(server, `http://127.0.0.1:${port}`, basic);
    return fake;
  }

  /** The next `times` conversion requests are answered with `status` (503: busy or timed out). */
  failNext(status: number, times = 1): void {
    this.failures.push({ status, times });
  }

  /** From now on, conversion requests are never answered (a stuck LibreOffice). */
  hang(): void {
    this.hanging = true;
  }

  async close(): Promise<void> {
    for (const res of this.pending) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method === 'GET' && path === '/health')
      return send(res, 200, 'application/json', '{"status":"up"}');
    if (this.basicAuth && req.headers.authorization !== this.basicAuth)
      return send(res, 401, 'text/plain', 'Unauthorized');
    if (req.method !== 'POST' || path !== '/forms/libreoffice/convert')
      return send(res, 404, 'text/plain', 'Not Found');
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let form: FormData;
    try {
      const request = new Request('http://fake/', {
        method: 'POST',
        headers: { 'content-type': req.headers['content-type'] ?? '' },
        body: Buffer.concat(chunks),
      });
      form = await request.formData();
    } catch {
      return send(res, 400, 'text/plain', 'Invalid form data: malformed multipart body');
    }
    const files: GotenbergRequest['files'] = [];
    const fields: Record<string, string> = {};
    for (const [key, value] of form.entries()) {
      if (typeof value === 'string') fields[key] = value;
      else if (key === 'files')
        files.push({ name: value.name, bytes: Buffer.from(await value.arrayBuffer()) });
    }
    this.requests.push({ files, fields, authorization: req.headers.authorization });

    const failure = this.failures[0];
    if (failure) {
      failure.times -= 1;
      if (failure.times <= 0) this.failures.shift();
      return send(
        res,
        failure.status,
        'text/plain',
        failure.status === 503 ? 'Service Unavailable' : 'Error',
      );
    }
    if (this.hanging) {
      this.pending.add(res);
      return;
    }
    if (files.length === 0)
      return send(
        res,
        400,
        'text/plain',
        'Invalid form data: no form file found for extensions: [.doc .docx ...]',
      );
    for (const f of files) {
      const ext = f.name.slice(f.name.lastIndexOf('.') + 1).toLowerCase();
      if (!ACCEPTED.has(ext))
        return send(
          res,
          400,
          'text/plain',
          `Invalid form data: no form file found for extensions: [.${ext}]`,
        );
      if (ZIP_BASED.has(ext) && f.bytes.subarray(0, 2).toString('latin1') !== 'PK')
        return send(
          res,
          400,
          'text/plain',
          'LibreOffice failed to process a document: possible causes include malformed document or an invalid password',
        );
    }
    const trace = randomUUID();
    const first = files[0]!;
    res.writeHead(200, {
      'Content-Type': 'application/pdf',
      'Content-Disposition': `attachment; filename="${trace}.pdf"`,
      'Gotenberg-Trace': trace,
    });
    res.end(pdf(`${first.name} ${first.bytes.length}`));
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'Content-Type': type, 'Gotenberg-Trace': randomUUID() });
  res.end(body);
}
