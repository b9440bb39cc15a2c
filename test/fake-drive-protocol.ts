/**
 * Pieces of Drive's wire protocol the fake Drive server needs: the query language subset of
 * files.list, `fields` masks, `multipart/related` bodies and Google's JSON error format.
 */

/** The part of a file the query language looks at. */
export interface QueryableFile {
  name: string;
  mimeType: string;
  parents: string[];
  trashed: boolean;
  appProperties: Record<string, string>;
}

/** A status with an optional body and headers, as the fake answers. */
export type Answer = { status: number; body?: unknown; headers?: Record<string, string> };

const ERROR_DEFAULTS: Record<number, [string, string]> = {
  400: ['badRequest', 'Bad Request'],
  401: ['authError', 'Invalid Credentials'],
  403: ['forbidden', 'Forbidden'],
  404: ['notFound', 'File not found.'],
  409: ['conflict', 'Conflict'],
  429: ['rateLimitExceeded', 'Rate Limit Exceeded'],
  500: ['backendError', 'Backend Error'],
  503: ['backendError', 'Service Unavailable'],
};

/** Google's JSON error body. */
export function googleError(status: number, reason?: string, message?: string): Answer {
  const [defReason, defMessage] = ERROR_DEFAULTS[status] ?? ['unknown', `HTTP ${status}`];
  const r = reason ?? defReason;
  const m = message ?? defMessage;
  const domain = /RateLimit|rateLimit|Quota/.test(r) ? 'usageLimits' : 'global';
  return {
    status,
    body: { error: { code: status, message: m, errors: [{ domain, reason: r, message: m }] } },
  };
}

/**
 * Parses the `q` subset Postroom uses: `name = '…'`, `'<id>' in parents` (`root` standing for `rootId`), `mimeType = '…'` (or `!=`),
 * `trashed = true|false`, `appProperties has { key='…' and value='…' }`, joined with `and`. Strings
 * escape `'` and `\` with a backslash, as in Drive's query language. Anything else throws.
 */
export function parseQuery(q: string, rootId: string): (f: QueryableFile) => boolean {
  if (q.trim() === '') return () => true;
  const tokens: string[] = [];
  let consumed = 0;
  for (const m of q.matchAll(/\s*('(?:[^'\\]|\\.)*'|!=|=|[{}]|[A-Za-z]+)/gy)) {
    tokens.push(m[1] ?? '');
    consumed = m.index + m[0].length;
  }
  if (q.slice(consumed).trim() !== '') throw new Error(`cannot parse ${q.slice(consumed)}`);
  let i = 0;
  const next = () => tokens[i++] ?? '';
  const expect = (t: string) => {
    const got = next();
    if (got.toLowerCase() !== t.toLowerCase()) throw new Error(`expected ${t}, got ${got || 'end'}`);
  };
  const str = () => {
    const t = next();
    if (!t.startsWith("'")) throw new Error(`expected a string, got ${t || 'end'}`);
    return t.slice(1, -1).replace(/\\(.)/g, '$1');
  };
  const terms: ((f: QueryableFile) => boolean)[] = [];
  while (i < tokens.length) {
    if (terms.length > 0) expect('and');
    const t = tokens[i] ?? '';
    if (t.startsWith("'")) {
      const id = str();
      expect('in');
      expect('parents');
      terms.push((f) => f.parents.includes(id === 'root' ? rootId : id));
    } else if (t === 'name' || t === 'mimeType' || t === 'trashed') {
      next();
      const op = next();
      if (op !== '=' && op !== '!=') throw new Error(`unsupported operator ${op} for ${t}`);
      const value = t === 'trashed' ? String(next() === 'true') : str();
      const get = (f: QueryableFile) => (t === 'trashed' ? String(f.trashed) : f[t]);
      terms.push((f) => (get(f) === value) === (op === '='));
    } else if (t === 'appProperties') {
      next();
      expect('has');
      expect('{');
      expect('key');
      expect('=');
      const key = str();
      expect('and');
      expect('value');
      expect('=');
      const value = str();
      expect('}');
      terms.push((f) => f.appProperties[key] === value);
    } else throw new Error(`unsupported term ${t || 'end'}`);
  }
  return (f) => terms.every((term) => term(f));
}

/** Keeps only what a `fields` mask (`id,files(id,name),nextPageToken`) names. */
export function pickFields(obj: Record<string, unknown>, mask: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, sub] of splitMask(mask)) {
    const value = obj[name];
    if (value === undefined) continue;
    if (sub === null || value === null || typeof value !== 'object') out[name] = value;
    else if (Array.isArray(value))
      out[name] = value.map((v) =>
        v && typeof v === 'object' ? pickFields(v as Record<string, unknown>, sub) : v,
      );
    else out[name] = pickFields(value as Record<string, unknown>, sub);
  }
  return out;
}

function splitMask(mask: string): [string, string | null][] {
  const out: [string, string | null][] = [];
  let depth = 0;
  let start = 0;
  const push = (part: string) => {
    const p = part.trim();
    if (!p) return;
    const open = p.indexOf('(');
    out.push(open < 0 ? [p, null] : [p.slice(0, open), p.slice(open + 1, -1)]);
  };
  for (let i = 0; i < mask.length; i++) {
    if (mask[i] === '(') depth++;
    else if (mask[i] === ')') depth--;
    else if (mask[i] === ',' && depth === 0) {
      push(mask.slice(start, i));
      start = i + 1;
    }
  }
  push(mask.slice(start));
  return out;
}

/** Splits a `multipart/related` body into its parts' bodies; null when it is malformed. */
export function parseMultipart(body: Buffer, boundary: string): Buffer[] | null {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Buffer[] = [];
  let at = body.indexOf(delimiter);
  if (at !== 0) return null;
  for (;;) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') return parts;
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), start);
    if (next < 0) return null;
    const part = body.subarray(start + 2, next);
    const headerEnd = part.indexOf('\r\n\r\n');
    if (headerEnd < 0) return null;
    parts.push(part.subarray(headerEnd + 4));
    at = next + 2;
  }
}

/** Parses a JSON object body; null when it is not one. */
export function parseJson(buf: Buffer): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(buf.toString('utf8'));
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
