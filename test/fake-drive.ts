import { createHash, createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  googleError,
  parseJson,
  parseMultipart,
  parseQuery,
  pickFields,
  type Answer,
} from './fake-drive-protocol.js';

export { guardEgress } from './egress-guard.js';
export { googleError } from './fake-drive-protocol.js';

/**
 * A fake Google Drive v3 server for tests, written from Google's public reference (files.list with
 * `q`, files.create, files.get (metadata, or `alt=media` with `Range`: 206, or 416 past the end;
 * Docs Editors files refuse it with `fileNotDownloadable`), files.export, files.update (move with
 * `addParents`/`removeParents`, trash), files.delete, changes.getStartPageToken and changes.list
 * (a change log with numeric page tokens), files.generateIds, multipart and resumable uploads with
 * `308 Resume Incomplete`, Google's JSON error format) plus the OAuth 2.0 token endpoint. It keeps
 * everything in memory, logs every request, checks bearer tokens, and answers injected faults.
 * Only the behaviour Postroom relies on is modelled, but that part follows the real API's rules:
 * v3 returns few fields unless `fields` asks, `size` is a string, ids given to files.create must come
 * from files.generateIds and may be used once (409), and shared-drive items stay invisible without
 * `supportsAllDrives`.
 */

/** Drive's folder MIME type. */
export const FOLDER_MIME = 'application/vnd.google-apps.folder';
/** The fake's id for the My Drive root (what the `root` alias stands for). */
export const MY_DRIVE_ROOT = '0AFakeMyDriveRoot';

/** One file or folder held by the fake. */
export interface FakeDriveFile {
  id: string;
  name: string;
  mimeType: string;
  parents: string[];
  /** Shared drive id, or null in My Drive. */
  driveId: string | null;
  appProperties: Record<string, string>;
  trashed: boolean;
  createdTime: string;
  /** The bytes (null for folders and metadata-only files). */
  content: Buffer | null;
  /** Last change of content or metadata (RFC 3339). */
  modifiedTime?: string;
  /** Bumped by every change, as Drive's `version`. */
  version?: number;
  /** What files.export gives for a Docs Editors file, by MIME type (e.g. `application/pdf`). */
  exports?: Record<string, Buffer>;
}

/** One entry of the fake's change log (what changes.list reports). */
interface ChangeEntry {
  fileId: string;
  time: string;
  /** Deleted for good (not trashed). */
  removed: boolean;
}

/** One request as the fake saw it. */
export interface FakeDriveRequest {
  method: string;
  /** Path without the fake's base path, e.g. `/upload/drive/v3/files`. */
  path: string;
  query: Record<string, string>;
  /** Status answered (0 when the connection was reset by an injected fault). */
  status: number;
  /** Request body bytes received. */
  bytes: number;
  /** Whether the request carried an accepted bearer token. */
  authorized: boolean;
}

/** A fault the next matching requests get instead of a normal answer. */
export interface FakeDriveFault {
  /** HTTP method to match (any when unset). */
  method?: string;
  /** Path to match, without the base path: an exact string or a pattern. */
  path: string | RegExp;
  /** How many requests fail (default 1). */
  times?: number;
  /** How many matching requests pass before the first failure (default 0). */
  skip?: number;
  /** Status to answer: 429, 500, 503, 403 ... (default 503). */
  status?: number;
  /** Google error reason (default from the status: rateLimitExceeded, backendError ...). */
  reason?: string;
  /** `Retry-After` header, seconds. */
  retryAfterSeconds?: number;
  /** For a resumable upload PUT: keep this many bytes of the chunk before failing (a chunk cut short). */
  acceptBytes?: number;
  /** Drop the connection without an answer instead of sending `status`. */
  reset?: boolean;
  /** Do the work first, then answer `status`: the effect happened but its answer is lost. */
  lose?: boolean;
}

/** Options of `FakeDrive.start`. */
export interface FakeDriveOptions {
  /** Bearer tokens accepted (default `['fake-drive-token']`). */
  tokens?: string[];
  /** Path the API is served under, e.g. `/proxy/` (default `/`): proves a rootUrl's path is kept. */
  basePath?: string;
  /** OAuth client id, secret and refresh token the token endpoint accepts. */
  oauth?: { clientId: string; clientSecret: string; refreshToken: string };
  /** PEM public key whose signature the token endpoint accepts on service-account JWT assertions. */
  serviceAccountPublicKey?: string;
}

interface UploadSession {
  meta: Record<string, unknown>;
  params: URLSearchParams;
  total: number | null;
  received: Buffer[];
  length: number;
  done: FakeDriveFile | null;
}

interface ArmedFault extends FakeDriveFault {
  left: number;
  skipLeft: number;
}

/** The fake server. Start one per test file with `FakeDrive.start()`, stop it with `close()`. */
export class FakeDrive {
  /** Root URL to give the client (`http://127.0.0.1:<port>/<basePath>`), ending in `/`. */
  readonly url: string;
  /** Every request, in arrival order. */
  readonly requests: FakeDriveRequest[] = [];
  private readonly store = new Map<string, FakeDriveFile>();
  private readonly generated = new Set<string>();
  private readonly sessions = new Map<string, UploadSession>();
  private readonly sharedDrives = new Set<string>();
  private faults: ArmedFault[] = [];
  private readonly changeLog: ChangeEntry[] = [];
  private readonly onDownload = new Map<string, Buffer>();
  private readonly tokens: Set<string>;
  private readonly saKey: KeyObject | null;
  private clock = Date.parse('2026-01-01T00:00:00Z');

  private constructor(
    private readonly server: Server,
    readonly basePath: string,
    private readonly options: FakeDriveOptions,
  ) {
    const { port } = server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}${basePath}`;
    this.tokens = new Set(options.tokens ?? ['fake-drive-token']);
    this.saKey = options.serviceAccountPublicKey ? createPublicKey(options.serviceAccountPublicKey) : null;
  }

  /** Starts a fake on a random loopback port. */
  static async start(options: FakeDriveOptions = {}): Promise<FakeDrive> {
    const basePath = `/${(options.basePath ?? '/').replace(/^\/+|\/+$/g, '')}/`.replace('//', '/');
    const ready: { fake?: FakeDrive } = {};
    const server = createServer((req, res) => {
      ready.fake?.handle(req, res).catch((err: unknown) => {
        console.error('fake drive crashed on a request', err);
        res.destroy();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ready.fake = new FakeDrive(server, basePath, options);
    return ready.fake;
  }

  /** Stops the server and drops open connections. */
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The token endpoint URL (for the auth client's token URL override). */
  get tokenUrl(): string {
    return `${this.url}token`;
  }

  /** Adds a shared drive and returns its id, which is also the id of its root folder. */
  addSharedDrive(): string {
    const id = `0AShared${randomBytes(6).toString('hex')}`;
    this.sharedDrives.add(id);
    return id;
  }

  /** Every file and folder (trashed ones too). */
  files(): FakeDriveFile[] {
    return [...this.store.values()];
  }

  /** One file, or undefined. */
  file(id: string): FakeDriveFile | undefined {
    return this.store.get(id);
  }

  /** A file's bytes; throws when it has none. */
  content(id: string): Buffer {
    const c = this.store.get(id)?.content;
    if (!c) throw new Error(`fake drive: no content for ${id}`);
    return c;
  }

  /** Files (not folders) whose parent is `folderId`. */
  filesIn(folderId: string): FakeDriveFile[] {
    return this.files().filter((f) => f.mimeType !== FOLDER_MIME && f.parents.includes(folderId));
  }

  /** Folders named `name` under `parentId`. */
  foldersNamed(parentId: string, name: string): FakeDriveFile[] {
    return this.files().filter(
      (f) => f.mimeType === FOLDER_MIME && f.name === name && f.parents.includes(parentId),
    );
  }

  /** Puts a file in place directly (as if made by someone else), returning it. */
  seed(file: Partial<FakeDriveFile> & { name: string; parents: string[] }): FakeDriveFile {
    const parent = this.resolveParent(file.parents[0] ?? 'root');
    const f: FakeDriveFile = {
      id: this.newId(),
      mimeType: 'application/octet-stream',
      driveId: parent?.driveId ?? null,
      appProperties: {},
      trashed: false,
      createdTime: this.now(),
      content: null,
      ...file,
      parents: file.parents.map((p) => (p === 'root' ? MY_DRIVE_ROOT : p)),
    };
    this.store.set(f.id, f);
    this.changed(f);
    return f;
  }

  /** Deletes a file or folder for good, as a person would in Drive: a folder takes its contents with it. */
  deleteFile(id: string): void {
    for (const f of this.files()) if (f.parents.includes(id)) this.deleteFile(f.id);
    this.store.delete(id);
  }

  /** Replaces a file's bytes (as an edit by someone else would), logging a change. */
  updateContent(id: string, content: Buffer): void {
    const f = this.store.get(id);
    if (!f) throw new Error(`fake drive: no file ${id}`);
    f.content = content;
    this.changed(f);
  }

  /** Deletes a file for good (as a person emptying the trash would), logging a removal. */
  remove(id: string): void {
    if (!this.store.delete(id)) throw new Error(`fake drive: no file ${id}`);
    this.changeLog.push({ fileId: id, time: this.now(), removed: true });
  }

  /**
   * The next `alt=media` download of `id` finds the file already replaced by `content` (an edit that
   * lands between reading the metadata and reading the bytes).
   */
  changeOnNextDownload(id: string, content: Buffer): void {
    this.onDownload.set(id, content);
  }

  /** Makes the next matching requests fail as described. */
  failNext(fault: FakeDriveFault): void {
    this.faults.push({ ...fault, left: fault.times ?? 1, skipLeft: fault.skip ?? 0 });
  }

  /** Disarms every fault not yet used up. */
  clearFaults(): void {
    this.faults = [];
  }

  /** Forgets every open resumable session: their next PUT gets 404, as for an expired session. */
  expireUploadSessions(): void {
    for (const [id, s] of this.sessions) if (!s.done) this.sessions.delete(id);
  }

  /** Requests whose method and path match. */
  requestsTo(method: string, path: string): FakeDriveRequest[] {
    return this.requests.filter((r) => r.method === method && r.path === path);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const underBase = url.pathname.startsWith(this.basePath);
    const path = underBase ? `/${url.pathname.slice(this.basePath.length)}` : url.pathname;
    const body = await readBody(req);
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const entry: FakeDriveRequest = {
      method: req.method ?? 'GET',
      path,
      query: Object.fromEntries(url.searchParams),
      status: 0,
      bytes: body.length,
      authorized: bearer !== undefined && this.tokens.has(bearer),
    };
    this.requests.push(entry);
    const fault = this.takeFault(entry.method, path);
    let answer: Answer;
    if (fault?.reset) {
      req.socket.destroy();
      return;
    } else if (!underBase) {
      answer = googleError(404, 'notFound', `Not under the base path ${this.basePath}: ${url.pathname}`);
    } else if (fault) {
      if (fault.lose && entry.authorized) this.route(req, url, path, body);
      else if (fault.acceptBytes !== undefined && entry.method === 'PUT')
        this.putChunk(req, url.searchParams, body.subarray(0, fault.acceptBytes), true);
      answer = googleError(fault.status ?? 503, fault.reason);
      if (fault.retryAfterSeconds !== undefined)
        answer.headers = { 'Retry-After': String(fault.retryAfterSeconds) };
    } else if (path === '/token' && entry.method === 'POST') {
      answer = this.token(new URLSearchParams(body.toString('utf8')));
    } else if (!entry.authorized) {
      answer = googleError(401, 'authError', 'Request had invalid authentication credentials.');
    } else {
      answer = this.route(req, url, path, body);
    }
    entry.status = answer.status;
    const headers: Record<string, string> = { ...answer.headers };
    let payload: Buffer | undefined;
    if (Buffer.isBuffer(answer.body)) payload = answer.body;
    else if (answer.body !== undefined) {
      payload = Buffer.from(JSON.stringify(answer.body));
      headers['Content-Type'] = 'application/json; charset=UTF-8';
    }
    res.writeHead(answer.status, { ...headers, 'Content-Length': String(payload?.length ?? 0) });
    res.end(payload);
  }

  private takeFault(method: string, path: string): ArmedFault | undefined {
    const f = this.faults.find(
      (x) =>
        x.left > 0 &&
        (x.method === undefined || x.method === method) &&
        (typeof x.path === 'string' ? x.path === path : x.path.test(path)),
    );
    if (!f) return undefined;
    if (f.skipLeft > 0) {
      f.skipLeft--;
      return undefined;
    }
    f.left--;
    return f;
  }

  private route(req: IncomingMessage, url: URL, path: string, body: Buffer): Answer {
    const q = url.searchParams;
    const m = req.method;
    if (m === 'GET' && path === '/drive/v3/files/generateIds') return this.generateIds(q);
    if (m === 'GET' && path === '/drive/v3/files') return this.list(q);
    if (m === 'POST' && path === '/drive/v3/files') return this.create(parseJson(body), null, q);
    if (m === 'GET' && path === '/drive/v3/changes/startPageToken')
      return {
        status: 200,
        body: { kind: 'drive#startPageToken', startPageToken: String(this.changeLog.length) },
      };
    if (m === 'GET' && path === '/drive/v3/changes') return this.changes(q);
    const exp = /^\/drive\/v3\/files\/([^/]+)\/export$/.exec(path);
    if (m === 'GET' && exp) return this.exportFile(decodeURIComponent(exp[1] ?? ''), q);
    const get = /^\/drive\/v3\/files\/([^/]+)$/.exec(path);
    if (m === 'GET' && get) return this.get(decodeURIComponent(get[1] ?? ''), q, req.headers.range);
    if (m === 'PATCH' && get) return this.update(decodeURIComponent(get[1] ?? ''), parseJson(body) ?? {}, q);
    if (m === 'DELETE' && get) {
      const id = decodeURIComponent(get[1] ?? '');
      if (!this.visible(this.store.get(id), q)) return googleError(404, 'notFound', `File not found: ${id}.`);
      this.remove(id);
      return { status: 204 };
    }
    if (path === '/upload/drive/v3/files') {
      const type = q.get('uploadType');
      if (m === 'POST' && type === 'multipart') return this.multipart(req, body, q);
      if (m === 'POST' && type === 'resumable') return this.startSession(req, body, q);
      if (m === 'PUT' && type === 'resumable') return this.putChunk(req, q, body);
      return googleError(400, 'badRequest', `Unsupported uploadType ${String(type)} for ${m}`);
    }
    return googleError(404, 'notFound', `Not Found: ${m} ${path}`);
  }

  private generateIds(q: URLSearchParams): Answer {
    const count = Number(q.get('count') ?? 10);
    if (!Number.isInteger(count) || count < 1 || count > 1000)
      return googleError(400, 'invalid', 'Invalid Value');
    const ids = Array.from({ length: count }, () => this.newId());
    for (const id of ids) this.generated.add(id);
    return { status: 200, body: { kind: 'drive#generatedIds', space: q.get('space') ?? 'drive', ids } };
  }

  private list(q: URLSearchParams): Answer {
    const allDrives = q.get('includeItemsFromAllDrives') === 'true';
    if (allDrives && q.get('supportsAllDrives') !== 'true')
      return googleError(400, 'invalid', 'includeItemsFromAllDrives requires supportsAllDrives');
    let predicate: (f: FakeDriveFile) => boolean;
    try {
      predicate = parseQuery(q.get('q') ?? '', MY_DRIVE_ROOT);
    } catch (err) {
      return googleError(400, 'invalid', `Invalid Value (q): ${(err as Error).message}`);
    }
    const matches = this.files().filter((f) => (allDrives || f.driveId === null) && predicate(f));
    const order = q.get('orderBy') ?? '';
    if (/^(createdTime|name)( desc)?$/.test(order)) {
      const [key, desc] = order.split(' ') as ['createdTime' | 'name', string | undefined];
      matches.sort((a, b) => a[key].localeCompare(b[key]) * (desc ? -1 : 1));
    }
    const pageSize = Math.min(Number(q.get('pageSize') ?? 100), 1000);
    const start = Number(q.get('pageToken') ?? 0);
    const out: Record<string, unknown> = {
      kind: 'drive#fileList',
      incompleteSearch: false,
      files: matches.slice(start, start + pageSize).map((f) => this.resource(f)),
    };
    if (start + pageSize < matches.length) out['nextPageToken'] = String(start + pageSize);
    return {
      status: 200,
      body: pickFields(out, q.get('fields') ?? 'kind,incompleteSearch,files(kind,id,name,mimeType)'),
    };
  }

  private get(id: string, q: URLSearchParams, range: string | undefined): Answer {
    const f = this.visible(this.store.get(id === 'root' ? MY_DRIVE_ROOT : id), q);
    if (!f) return googleError(404, 'notFound', `File not found: ${id}.`);
    if (q.get('alt') !== 'media') return { status: 200, body: this.fields(f, q) };
    if (f.mimeType.startsWith('application/vnd.google-apps.'))
      return googleError(
        403,
        'fileNotDownloadable',
        'Only files with binary content can be downloaded. Use Export with Docs Editors files.',
      );
    const replacement = this.onDownload.get(f.id);
    if (replacement) {
      this.onDownload.delete(f.id);
      this.updateContent(f.id, replacement);
    }
    const content = f.content ?? Buffer.alloc(0);
    const headers = { 'Content-Type': f.mimeType };
    // One range `bytes=a-b`, `bytes=a-` or `bytes=-n` (RFC 9110), as Google's media endpoint serves it.
    const m = range ? /^bytes=(\d*)-(\d*)$/.exec(range.trim()) : null;
    if (!m || (m[1] === '' && m[2] === '')) return { status: 200, body: content, headers };
    const size = content.length;
    let start = m[1] === '' ? Math.max(0, size - Number(m[2])) : Number(m[1]);
    let end = m[1] === '' || m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (start >= size || start > end)
      return {
        ...googleError(416, 'requestedRangeNotSatisfiable', 'Request range not satisfiable'),
        headers: { 'Content-Range': `bytes */${size}` },
      };
    start = Math.max(0, start);
    end = Math.max(start, end);
    return {
      status: 206,
      body: content.subarray(start, end + 1),
      headers: { ...headers, 'Content-Range': `bytes ${start}-${end}/${size}` },
    };
  }

  /** files.export: Docs Editors files only, into one of the formats the file offers. */
  private exportFile(id: string, q: URLSearchParams): Answer {
    const f = this.visible(this.store.get(id), q);
    if (!f) return googleError(404, 'notFound', `File not found: ${id}.`);
    if (!f.mimeType.startsWith('application/vnd.google-apps.'))
      return googleError(403, 'fileNotExportable', 'Export only supports Docs Editors files.');
    const type = q.get('mimeType') ?? '';
    const bytes = f.exports?.[type];
    if (!bytes) return googleError(400, 'badRequest', `Cannot export to ${type}.`);
    return { status: 200, body: bytes, headers: { 'Content-Type': type } };
  }

  /** files.update without media: rename, move (`addParents`/`removeParents`), trash. */
  private update(id: string, meta: Record<string, unknown>, q: URLSearchParams): Answer {
    const f = this.visible(this.store.get(id), q);
    if (!f) return googleError(404, 'notFound', `File not found: ${id}.`);
    const add = (q.get('addParents') ?? '').split(',').filter(Boolean);
    const drop = new Set((q.get('removeParents') ?? '').split(',').filter(Boolean));
    for (const p of add) {
      const parent = this.visible(this.resolveParent(p), q);
      if (!parent || parent.mimeType !== FOLDER_MIME)
        return googleError(404, 'notFound', `File not found: ${p}.`);
    }
    f.parents = [
      ...f.parents.filter((p) => !drop.has(p)),
      ...add.map((p) => (p === 'root' ? MY_DRIVE_ROOT : p)),
    ];
    if (typeof meta['name'] === 'string') f.name = meta['name'];
    if (typeof meta['trashed'] === 'boolean') f.trashed = meta['trashed'];
    if (meta['appProperties'] && typeof meta['appProperties'] === 'object')
      f.appProperties = { ...f.appProperties, ...(meta['appProperties'] as Record<string, string>) };
    this.changed(f);
    return { status: 200, body: this.fields(f, q) };
  }

  /** changes.list: the log from `pageToken` on; the last page carries `newStartPageToken`. */
  private changes(q: URLSearchParams): Answer {
    const token = q.get('pageToken');
    if (token === null || !/^\d+$/.test(token) || Number(token) > this.changeLog.length)
      return googleError(400, 'invalid', 'Invalid Value (pageToken)');
    const start = Number(token);
    const pageSize = Math.min(Number(q.get('pageSize') ?? 100), 1000);
    const allDrives = q.get('includeItemsFromAllDrives') === 'true';
    const page = this.changeLog.slice(start, start + pageSize);
    const changes = page
      .map((c) => {
        const f = this.store.get(c.fileId);
        if (f && f.driveId !== null && !allDrives) return null;
        return {
          kind: 'drive#change',
          changeType: 'file',
          time: c.time,
          removed: c.removed || !f,
          fileId: c.fileId,
          ...(f && !c.removed ? { file: this.resource(f) } : {}),
        };
      })
      .filter((c) => c !== null && (q.get('includeRemoved') !== 'false' || !c.removed));
    const end = start + page.length;
    const out: Record<string, unknown> = { kind: 'drive#changeList', changes };
    if (end < this.changeLog.length) out['nextPageToken'] = String(end);
    else out['newStartPageToken'] = String(end);
    return {
      status: 200,
      body: pickFields(out, q.get('fields') ?? 'kind,nextPageToken,newStartPageToken,changes'),
    };
  }

  /** Stamps a change on a file and logs it for changes.list. */
  private changed(f: FakeDriveFile): void {
    f.modifiedTime = this.now();
    f.version = (f.version ?? 0) + 1;
    this.changeLog.push({ fileId: f.id, time: f.modifiedTime, removed: false });
  }

  private create(meta: Record<string, unknown> | null, content: Buffer | null, q: URLSearchParams): Answer {
    const checked = this.checkCreate(meta, q);
    if ('status' in checked) return checked;
    const f: FakeDriveFile = { ...checked, content, createdTime: this.now() };
    this.store.set(f.id, f);
    this.changed(f);
    return { status: 200, body: this.fields(f, q) };
  }

  /** Validates files.create metadata the way Drive does; returns the new file's fields or an error. */
  private checkCreate(
    meta: Record<string, unknown> | null,
    q: URLSearchParams,
  ): Omit<FakeDriveFile, 'content' | 'createdTime'> | Answer {
    if (meta === null) return googleError(400, 'parseError', 'Parse Error');
    const parentId = Array.isArray(meta['parents']) ? String(meta['parents'][0]) : 'root';
    const parent = this.visible(this.resolveParent(parentId), q);
    if (!parent || parent.mimeType !== FOLDER_MIME)
      return googleError(404, 'notFound', `File not found: ${parentId}.`);
    let id = typeof meta['id'] === 'string' ? meta['id'] : undefined;
    if (id !== undefined) {
      if (this.store.has(id))
        return googleError(409, 'fileIdInUse', 'A file already exists with the provided ID.');
      if (!this.generated.has(id)) return googleError(400, 'invalid', 'The provided file ID is not usable.');
    } else id = this.newId();
    return {
      id,
      name: typeof meta['name'] === 'string' ? meta['name'] : 'Untitled',
      mimeType: typeof meta['mimeType'] === 'string' ? meta['mimeType'] : 'application/octet-stream',
      parents: [parent.id],
      driveId: parent.driveId,
      appProperties: (meta['appProperties'] as Record<string, string> | undefined) ?? {},
      trashed: false,
    };
  }

  private multipart(req: IncomingMessage, body: Buffer, q: URLSearchParams): Answer {
    const boundary = /boundary=("?)([^";]+)\1/.exec(req.headers['content-type'] ?? '')?.[2];
    const parts = boundary ? parseMultipart(body, boundary) : null;
    if (!parts || parts.length !== 2) return googleError(400, 'badRequest', 'Malformed multipart body.');
    const meta = parseJson(parts[0] ?? Buffer.alloc(0));
    return this.create(meta, parts[1] ?? Buffer.alloc(0), q);
  }

  private startSession(req: IncomingMessage, body: Buffer, q: URLSearchParams): Answer {
    const meta = body.length === 0 ? {} : parseJson(body);
    const checked = this.checkCreate(meta, q);
    if ('status' in checked) return checked;
    const length = req.headers['x-upload-content-length'];
    const sessionId = randomBytes(12).toString('base64url');
    this.sessions.set(sessionId, {
      meta: { ...meta, mimeType: meta?.['mimeType'] ?? req.headers['x-upload-content-type'] },
      params: q,
      total: length === undefined ? null : Number(length),
      received: [],
      length: 0,
      done: null,
    });
    const location = new URL(`${this.basePath}upload/drive/v3/files`, `http://${req.headers.host}`);
    location.search = new URLSearchParams({ ...Object.fromEntries(q), upload_id: sessionId }).toString();
    return { status: 200, headers: { Location: location.toString() } };
  }

  /** One PUT of a resumable session; `cut` when a fault kept only part of the body. */
  private putChunk(req: IncomingMessage, q: URLSearchParams, body: Buffer, cut = false): Answer {
    const s = this.sessions.get(q.get('upload_id') ?? '');
    if (!s) return googleError(404, 'notFound', 'Upload session not found or expired.');
    // Google's front end refuses a body without a Content-Length (a chunked PUT) with 411.
    if (body.length > 0 && req.headers['content-length'] === undefined)
      return googleError(411, 'lengthRequired', 'PUT requests require a Content-Length header.');
    const range = /^bytes (?:(\d+)-(\d+)|\*)\/(\d+|\*)$/.exec(
      req.headers['content-range'] ?? `bytes */${s.total ?? '*'}`,
    );
    if (!range) return googleError(400, 'badRequest', 'Invalid Content-Range.');
    const announced = range[1] === undefined ? 0 : Number(range[2]) - Number(range[1]) + 1;
    if (!cut && body.length !== announced)
      return googleError(
        400,
        'badRequest',
        `Content-Range announces ${announced} bytes, ${body.length} came.`,
      );
    if (range[3] !== '*') s.total = Number(range[3]);
    if (s.done) return { status: 200, body: this.fields(s.done, s.params) };
    if (range[1] !== undefined) {
      const start = Number(range[1]);
      if (start > s.length)
        return googleError(400, 'badRequest', `Chunk starts at ${start}, ${s.length} bytes received.`);
      const fresh = body.subarray(s.length - start);
      s.received.push(fresh);
      s.length += fresh.length;
    }
    if (s.total !== null && s.length >= s.total) {
      const answer = this.create(s.meta, Buffer.concat(s.received).subarray(0, s.total), s.params);
      if (answer.status === 200)
        s.done = this.store.get(String((answer.body as { id?: string }).id ?? s.meta['id'])) ?? null;
      return answer;
    }
    return { status: 308, headers: s.length > 0 ? { Range: `bytes=0-${s.length - 1}` } : {} };
  }

  private token(form: URLSearchParams): Answer {
    const ok = {
      status: 200,
      body: { access_token: [...this.tokens][0], expires_in: 3599, token_type: 'Bearer' },
    };
    const o = this.options.oauth;
    if (form.get('grant_type') === 'refresh_token' && o) {
      const good =
        form.get('refresh_token') === o.refreshToken &&
        form.get('client_id') === o.clientId &&
        form.get('client_secret') === o.clientSecret;
      return good ? ok : { status: 400, body: { error: 'invalid_grant', error_description: 'Bad Request' } };
    }
    if (form.get('grant_type') === 'urn:ietf:params:oauth:grant-type:jwt-bearer' && this.saKey) {
      const [h, p, sig] = (form.get('assertion') ?? '').split('.');
      const signed = verify(
        'RSA-SHA256',
        Buffer.from(`${h}.${p}`),
        this.saKey,
        Buffer.from(sig ?? '', 'base64url'),
      );
      const claims = parseJson(Buffer.from(p ?? '', 'base64url'));
      if (
        signed &&
        String(claims?.['scope'] ?? '')
          .split(' ')
          .includes('https://www.googleapis.com/auth/drive')
      )
        return ok;
      return { status: 400, body: { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' } };
    }
    return { status: 400, body: { error: 'unsupported_grant_type' } };
  }

  private resource(f: FakeDriveFile): Record<string, unknown> {
    const folder = f.mimeType === FOLDER_MIME;
    const r: Record<string, unknown> = {
      kind: 'drive#file',
      id: f.id,
      name: f.name,
      mimeType: f.mimeType,
      parents: f.parents,
      appProperties: f.appProperties,
      trashed: f.trashed,
      createdTime: f.createdTime,
      modifiedTime: f.modifiedTime ?? f.createdTime,
      version: String(f.version ?? 1),
      webViewLink: folder
        ? `https://drive.google.com/drive/folders/${f.id}`
        : `https://drive.google.com/file/d/${f.id}/view?usp=drivesdk`,
    };
    if (f.driveId) r['driveId'] = f.driveId;
    if (!folder && f.content) {
      r['size'] = String(f.content.length);
      r['md5Checksum'] = createHash('md5').update(f.content).digest('hex');
      r['sha256Checksum'] = createHash('sha256').update(f.content).digest('hex');
    }
    return r;
  }

  private fields(f: FakeDriveFile, q: URLSearchParams): Record<string, unknown> {
    return pickFields(this.resource(f), q.get('fields') ?? 'kind,id,name,mimeType');
  }

  private resolveParent(id: string): FakeDriveFile | undefined {
    if (id === 'root' || id === MY_DRIVE_ROOT) return this.rootFolder(MY_DRIVE_ROOT, null);
    if (this.sharedDrives.has(id)) return this.rootFolder(id, id);
    return this.store.get(id);
  }

  private rootFolder(id: string, driveId: string | null): FakeDriveFile {
    return {
      id,
      name: 'root',
      mimeType: FOLDER_MIME,
      parents: [],
      driveId,
      appProperties: {},
      trashed: false,
      createdTime: '',
      content: null,
    };
  }

  /** Shared-drive items exist for a caller only when it says `supportsAllDrives=true`. */
  private visible(f: FakeDriveFile | undefined, q: URLSearchParams): FakeDriveFile | undefined {
    return f && (f.driveId === null || q.get('supportsAllDrives') === 'true') ? f : undefined;
  }

  private newId(): string {
    return `1${randomBytes(24).toString('base64url')}`;
  }

  private now(): string {
    this.clock += 1000;
    return new Date(this.clock).toISOString();
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for await (const c of req) chunks.push(c as Buffer);
  } catch {
    // A client that hangs up mid-body: keep what arrived.
  }
  return Buffer.concat(chunks);
}
