import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The smallest in-memory Google Drive v3 the drive-upload consumer runs against, written from Drive's
 * public reference: files.generateIds; files.list with the two `q` shapes Postroom sends (a folder by
 * name, a file by `appProperties` sha256, both under one parent, not trashed); files.create of a
 * folder with a reserved id; multipart and resumable uploads with a reserved id (409 when the id is
 * used, 400 when it was never generated); files.get. It keeps metadata only: uploaded bytes are hashed
 * as they arrive and dropped, so the benchmark process stays small and the client's checks of size and
 * `sha256Checksum` still hold. Unlike the test fake (`test/fake-drive.ts`) it injects no faults and
 * logs no requests; it counts them.
 */

const FOLDER_MIME = 'application/vnd.google-apps.folder';

interface DriveFile {
  id: string;
  name: string;
  mimeType: string;
  parent: string;
  appProperties: Record<string, string>;
  size: number;
  sha256: string | null;
}

interface Session {
  meta: Record<string, unknown>;
  total: number;
  received: number;
  hash: Hash;
  done: DriveFile | null;
}

type Answer = { status: number; body?: unknown; headers?: Record<string, string> };

const error = (status: number, reason: string, message: string): Answer => ({
  status,
  body: { error: { code: status, message, errors: [{ domain: 'global', reason, message }] } },
});

/** A running fake. */
export class BenchFakeDrive {
  /** Root URL for `DRIVE_API_URL`, ending in `/`. */
  readonly url: string;
  /** Requests answered, by `METHOD path`. */
  readonly requests = new Map<string, number>();
  /** Uploads whose bytes did not hash to the sha256 app property the client sent (should stay 0). */
  mismatches = 0;
  private readonly files = new Map<string, DriveFile>();
  private readonly folders = new Map<string, string>(); // parent \0 name -> id
  private readonly bySha = new Map<string, string>(); // parent \0 sha256 -> id
  private readonly generated = new Set<string>();
  private readonly sessions = new Map<string, Session>();

  private constructor(
    private readonly server: Server,
    readonly token: string,
  ) {
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  }

  /** Starts a fake on a free loopback port accepting one bearer token. */
  static async start(token = `bench-${randomBytes(8).toString('hex')}`): Promise<BenchFakeDrive> {
    const holder: { fake?: BenchFakeDrive } = {};
    const server = createServer((req, res) => {
      holder.fake!.handle(req, res).catch(() => res.destroy());
    });
    server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (holder.fake = new BenchFakeDrive(server, token));
  }

  /** Files (not folders) held. */
  fileCount(): number {
    return [...this.files.values()].filter((f) => f.mimeType !== FOLDER_MIME).length;
  }

  /** Folders held. */
  folderCount(): number {
    return this.folders.size;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    const key = `${method} ${url.pathname.replace(/\/files\/[^/]+$/, '/files/:id')}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    let answer: Answer;
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      req.resume();
      answer = error(401, 'authError', 'Invalid Credentials');
    } else if (method === 'PUT' && url.pathname === '/upload/drive/v3/files') {
      answer = await this.putChunk(req, url.searchParams);
    } else {
      answer = this.route(req, url, await readBody(req));
    }
    const payload = answer.body === undefined ? undefined : Buffer.from(JSON.stringify(answer.body));
    res.writeHead(answer.status, {
      ...answer.headers,
      ...(payload ? { 'Content-Type': 'application/json; charset=UTF-8' } : {}),
      'Content-Length': String(payload?.length ?? 0),
    });
    res.end(payload);
  }

  private route(req: IncomingMessage, url: URL, body: Buffer): Answer {
    const q = url.searchParams;
    const path = url.pathname;
    if (req.method === 'GET' && path === '/drive/v3/files/generateIds') {
      const ids = Array.from({ length: Math.min(1000, Number(q.get('count') ?? 10)) }, newId);
      for (const id of ids) this.generated.add(id);
      return { status: 200, body: { kind: 'drive#generatedIds', space: 'drive', ids } };
    }
    if (req.method === 'GET' && path === '/drive/v3/files') return this.list(q.get('q') ?? '');
    if (req.method === 'POST' && path === '/drive/v3/files') return this.create(parseJson(body), null);
    const get = /^\/drive\/v3\/files\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && get) {
      const f = this.files.get(decodeURIComponent(get[1] ?? ''));
      return f ? { status: 200, body: resource(f) } : error(404, 'notFound', 'File not found.');
    }
    if (req.method === 'POST' && path === '/upload/drive/v3/files') {
      if (q.get('uploadType') === 'multipart') return this.multipart(req, body);
      if (q.get('uploadType') === 'resumable') return this.startSession(req, body);
    }
    return error(404, 'notFound', `Not Found: ${req.method} ${path}`);
  }

  /** The two queries Postroom sends: a folder by name, or a file by its sha256 app property. */
  private list(query: string): Answer {
    const str = (re: RegExp) => re.exec(query)?.[1]?.replace(/\\(.)/g, '$1');
    const parent = str(/^'((?:[^'\\]|\\.)*)' in parents/);
    const name = str(/\bname = '((?:[^'\\]|\\.)*)'/);
    const sha = str(/appProperties has \{ key='sha256' and value='([0-9a-f]{64})' \}/);
    if (parent === undefined || (name === undefined && sha === undefined))
      return error(400, 'invalid', `Invalid Value (q): this fake does not understand ${query}`);
    const id =
      name !== undefined ? this.folders.get(`${parent}\0${name}`) : this.bySha.get(`${parent}\0${sha}`);
    const f = id ? this.files.get(id) : undefined;
    return { status: 200, body: { kind: 'drive#fileList', files: f ? [resource(f)] : [] } };
  }

  /** Checks a reserved id; returns the new file or an error answer. */
  private create(
    meta: Record<string, unknown> | null,
    content: { size: number; sha256: string } | null,
  ): Answer {
    const checked = this.check(meta);
    if ('status' in checked) return checked;
    if (content) {
      checked.size = content.size;
      checked.sha256 = content.sha256;
      if (checked.appProperties['sha256'] !== content.sha256) this.mismatches += 1;
    }
    this.files.set(checked.id, checked);
    if (checked.mimeType === FOLDER_MIME) this.folders.set(`${checked.parent}\0${checked.name}`, checked.id);
    else if (checked.sha256) this.bySha.set(`${checked.parent}\0${checked.sha256}`, checked.id);
    return { status: 200, body: resource(checked) };
  }

  private check(meta: Record<string, unknown> | null): DriveFile | Answer {
    if (!meta) return error(400, 'parseError', 'Parse Error');
    const parent = Array.isArray(meta['parents']) ? String(meta['parents'][0]) : 'root';
    if (parent !== 'root' && this.files.get(parent)?.mimeType !== FOLDER_MIME)
      return error(404, 'notFound', `File not found: ${parent}.`);
    const id = typeof meta['id'] === 'string' ? meta['id'] : newId();
    if (this.files.has(id)) return error(409, 'fileIdInUse', 'A file already exists with the provided ID.');
    if (typeof meta['id'] === 'string' && !this.generated.has(id))
      return error(400, 'invalid', 'The provided file ID is not usable.');
    return {
      id,
      name: typeof meta['name'] === 'string' ? meta['name'] : 'Untitled',
      mimeType: typeof meta['mimeType'] === 'string' ? meta['mimeType'] : 'application/octet-stream',
      parent,
      appProperties: (meta['appProperties'] as Record<string, string> | undefined) ?? {},
      size: 0,
      sha256: null,
    };
  }

  private multipart(req: IncomingMessage, body: Buffer): Answer {
    const boundary = /boundary=("?)([^";]+)\1/.exec(req.headers['content-type'] ?? '')?.[2];
    const parts = boundary ? splitMultipart(body, boundary) : null;
    if (!parts || parts.length !== 2) return error(400, 'badRequest', 'Malformed multipart body.');
    const media = parts[1]!;
    return this.create(parseJson(parts[0]!), {
      size: media.length,
      sha256: createHash('sha256').update(media).digest('hex'),
    });
  }

  private startSession(req: IncomingMessage, body: Buffer): Answer {
    const meta = parseJson(body);
    const checked = this.check(meta);
    if ('status' in checked) return checked;
    const id = randomBytes(12).toString('base64url');
    const total = Number(req.headers['x-upload-content-length']);
    this.sessions.set(id, { meta: meta!, total, received: 0, hash: createHash('sha256'), done: null });
    const location = new URL(
      `/upload/drive/v3/files?uploadType=resumable&upload_id=${id}`,
      `http://${req.headers.host}`,
    );
    return { status: 200, headers: { Location: location.href } };
  }

  /** One PUT of a resumable session: bytes are hashed as they stream in, never kept. */
  private async putChunk(req: IncomingMessage, q: URLSearchParams): Promise<Answer> {
    const s = this.sessions.get(q.get('upload_id') ?? '');
    const range = /^bytes (?:(\d+)-(\d+)|\*)\/(\d+)$/.exec(req.headers['content-range'] ?? '');
    if (!s || !range) {
      req.resume();
      return s
        ? error(400, 'badRequest', 'Invalid Content-Range.')
        : error(404, 'notFound', 'No such upload.');
    }
    if (range[1] !== undefined && Number(range[1]) !== s.received) {
      req.resume();
      return error(400, 'badRequest', `Chunk starts at ${range[1]}, ${s.received} bytes received.`);
    }
    for await (const c of req) {
      s.hash.update(c as Buffer);
      s.received += (c as Buffer).length;
    }
    if (s.done) return { status: 200, body: resource(s.done) };
    if (s.received < s.total)
      return { status: 308, headers: s.received > 0 ? { Range: `bytes=0-${s.received - 1}` } : {} };
    const answer = this.create(s.meta, { size: s.received, sha256: s.hash.digest('hex') });
    if (answer.status === 200) s.done = this.files.get(String((answer.body as { id: string }).id)) ?? null;
    this.sessions.delete(q.get('upload_id') ?? '');
    return answer;
  }
}

function newId(): string {
  return `1${randomBytes(24).toString('base64url')}`;
}

/** Every field Postroom asks for (`fields` masks are not applied: extra fields are harmless). */
function resource(f: DriveFile): Record<string, unknown> {
  const folder = f.mimeType === FOLDER_MIME;
  return {
    kind: 'drive#file',
    id: f.id,
    name: f.name,
    mimeType: f.mimeType,
    parents: [f.parent],
    appProperties: f.appProperties,
    webViewLink: folder
      ? `https://drive.google.com/drive/folders/${f.id}`
      : `https://drive.google.com/file/d/${f.id}/view`,
    ...(folder ? {} : { size: String(f.size), ...(f.sha256 ? { sha256Checksum: f.sha256 } : {}) }),
  };
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function parseJson(buf: Buffer): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(buf.toString('utf8'));
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The bodies of a `multipart/related` message (headers dropped); null when malformed. */
function splitMultipart(body: Buffer, boundary: string): Buffer[] | null {
  const delimiter = Buffer.from(`--${boundary}`);
  const between = Buffer.from(`\r\n--${boundary}`);
  const parts: Buffer[] = [];
  let at = body.indexOf(delimiter);
  if (at !== 0) return null;
  for (;;) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') return parts;
    const next = body.indexOf(between, start);
    if (next < 0) return null;
    const part = body.subarray(start + 2, next);
    const headerEnd = part.indexOf('\r\n\r\n');
    if (headerEnd < 0) return null;
    parts.push(part.subarray(headerEnd + 4));
    at = next + 2;
  }
}
