import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import type { AuthResult, Principal } from '../status-api/auth.js';

/**
 * Console sessions without server-side state, so any `api` process behind a balancer serves any
 * session and a restart signs nobody out. The cookie holds the credential the operator typed (an
 * API token or a JWT), sealed with AES-256-GCM under a key derived from the configured credentials
 * (`API_TOKENS` and `JWT_SECRET`): nobody without all of them can read or forge one. Every request
 * opens the cookie and checks the credential again with the same authenticator as `/api`, so a
 * token taken off `API_TOKENS` or an expired JWT ends its sessions at once; changing the
 * configuration ends them all. Sign-out clears the cookie in the browser; a copy taken before stays
 * valid until `ttlSeconds` (there is no server-side list to strike it from).
 */

/** What a session cookie opens to. */
export interface Session {
  /** Random id of this sign-in (the CSRF token is bound to it). */
  id: string;
  /** Who signed in, as the API's authenticator sees them. */
  principal: Principal;
  /** When the session was made (unix seconds). */
  issuedAt: number;
  /** When it ends (unix seconds), whatever the credential says. */
  expiresAt: number;
}

/** Options of {@link ConsoleSessions}. */
export interface ConsoleSessionOptions {
  /** `API_TOKENS`. */
  tokens: readonly string[];
  /** `JWT_SECRET`. */
  jwtSecret?: string;
  /** The `/api` authenticator (takes an `Authorization` header value). */
  authenticate: (authorization: string | undefined) => AuthResult;
  /** Session lifetime in seconds (default 8 hours: a working day). */
  ttlSeconds?: number;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

/** Longest credential a session holds: browsers keep cookies up to about 4 KB. */
export const MAX_CREDENTIAL_LENGTH = 2800;

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Seals, opens and checks console sessions and their CSRF tokens. */
export class ConsoleSessions {
  private readonly sealKey: Buffer;
  private readonly csrfKey: Buffer;
  private readonly ttlSeconds: number;
  private readonly now: () => number;

  constructor(private readonly opts: ConsoleSessionOptions) {
    const material = createHash('sha256');
    for (const t of opts.tokens) material.update(createHash('sha256').update(t).digest());
    material.update('\0jwt\0').update(opts.jwtSecret ?? '');
    const ikm = material.digest();
    const derive = (info: string) =>
      Buffer.from(hkdfSync('sha256', ikm, 'postroom console session', info, 32));
    this.sealKey = derive('seal v1');
    this.csrfKey = derive('csrf v1');
    this.ttlSeconds = opts.ttlSeconds ?? 8 * 3600;
    this.now = opts.now ?? Date.now;
  }

  /** Session lifetime in seconds (the cookie's Max-Age). */
  get ttl(): number {
    return this.ttlSeconds;
  }

  /**
   * Checks a credential typed into the sign-in form; on success returns the cookie value of a new
   * session, else why it was refused.
   */
  signIn(
    credential: string,
  ): { ok: true; cookie: string; session: Session } | { ok: false; message: string } {
    const c = credential.trim();
    if (!c) return { ok: false, message: 'Type an API token or a JWT' };
    if (c.length > MAX_CREDENTIAL_LENGTH || /\s/.test(c))
      return { ok: false, message: 'That is not a token this server accepts' };
    const r = this.opts.authenticate(`Bearer ${c}`);
    if (!r.ok) return { ok: false, message: r.message };
    const issuedAt = Math.floor(this.now() / 1000);
    const id = randomBytes(16).toString('base64url');
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.sealKey, iv);
    const body = Buffer.concat([
      cipher.update(JSON.stringify({ v: 1, id, c, iat: issuedAt }), 'utf8'),
      cipher.final(),
    ]);
    const cookie = Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
    return {
      ok: true,
      cookie,
      session: { id, principal: r.principal, issuedAt, expiresAt: issuedAt + this.ttlSeconds },
    };
  }

  /** Opens a session cookie: null when it is missing, forged, too old, or its credential no longer passes. */
  open(cookie: string | undefined): Session | null {
    if (!cookie || cookie.length > 8192) return null;
    let payload: { v?: unknown; id?: unknown; c?: unknown; iat?: unknown };
    try {
      const raw = Buffer.from(cookie, 'base64url');
      if (raw.length <= IV_BYTES + TAG_BYTES) return null;
      const decipher = createDecipheriv('aes-256-gcm', this.sealKey, raw.subarray(0, IV_BYTES));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      const text = Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
      payload = JSON.parse(text.toString('utf8')) as typeof payload;
    } catch {
      return null;
    }
    if (payload.v !== 1 || typeof payload.id !== 'string' || typeof payload.c !== 'string') return null;
    if (typeof payload.iat !== 'number') return null;
    const nowSeconds = Math.floor(this.now() / 1000);
    const expiresAt = payload.iat + this.ttlSeconds;
    if (nowSeconds >= expiresAt || payload.iat > nowSeconds + 60) return null;
    const r = this.opts.authenticate(`Bearer ${payload.c}`);
    if (!r.ok) return null;
    return { id: payload.id, principal: r.principal, issuedAt: payload.iat, expiresAt };
  }

  /** The CSRF token of a session's forms. */
  csrfToken(session: Session): string {
    return this.mac(`session:${session.id}`);
  }

  /** The CSRF token of the sign-in form, bound to the browser's pre-session cookie. */
  signInCsrfToken(preSession: string): string {
    return this.mac(`sign-in:${preSession}`);
  }

  /** True when `given` is the CSRF token for `purpose` (compared in constant time). */
  checkCsrf(expected: string, given: unknown): boolean {
    if (typeof given !== 'string' || given.length !== expected.length) return false;
    return timingSafeEqual(Buffer.from(given), Buffer.from(expected));
  }

  private mac(what: string): string {
    return createHmac('sha256', this.csrfKey).update(what).digest('base64url');
  }
}
