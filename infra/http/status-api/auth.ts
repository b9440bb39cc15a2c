import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import { errorBody } from '../errors.js';
import type { RateLimiter } from './rate-limit.js';

/**
 * Bearer authentication of `/api/*`: the static tokens of `API_TOKENS` (compared in constant time,
 * through their SHA-256 so that neither content nor length leaks), and HS256 JWTs signed with
 * `JWT_SECRET` when it is set. Nothing configured: every request is refused.
 */

/** Who made an authenticated request; `key` names its rate-limit bucket and never holds a secret. */
export interface Principal {
  kind: 'token' | 'jwt';
  /** `token:<n>` (the n-th of API_TOKENS), `jwt:sub:<sub>`, or `jwt:<hash>` for a JWT without `sub`. */
  key: string;
  /** The JWT's `sub`, when it has one. */
  subject: string | null;
}

/** Why a request was refused. */
export interface AuthFailure {
  /** Stable code in the answer (`AUTH.MISSING_TOKEN`, `AUTH.INVALID_TOKEN`, `AUTH.TOKEN_EXPIRED`, ...). */
  code: string;
  message: string;
}

/** The outcome of checking an `Authorization` header. */
export type AuthResult = { ok: true; principal: Principal } | ({ ok: false } & AuthFailure);

/** What the authenticator accepts. */
export interface AuthOptions {
  /** `API_TOKENS`. */
  tokens: readonly string[];
  /** `JWT_SECRET`; JWTs are refused when unset. */
  jwtSecret?: string;
  /** Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds (default 30). */
  leewaySeconds?: number;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

const sha256 = (v: string) => createHash('sha256').update(v, 'utf8').digest();
const MAX_TOKEN_LENGTH = 8192;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

function fail(code: string, message: string): AuthResult {
  return { ok: false, code, message };
}

function decodeJson(part: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * Verifies a compact HS256 JWT: `alg` must be HS256 (never `none` or another algorithm), the signature
 * is compared in constant time, `exp` is required, and `exp`, `nbf` and `iat` (when present, as
 * numbers) are checked with `leewaySeconds` of tolerance. Returns the claims, or why the token is refused.
 */
export function verifyHs256Jwt(
  token: string,
  secret: string,
  nowSeconds: number,
  leewaySeconds = 30,
): { ok: true; claims: Record<string, unknown> } | ({ ok: false } & AuthFailure) {
  const invalid = (why: string) => ({
    ok: false as const,
    code: 'AUTH.INVALID_TOKEN',
    message: `Invalid token: ${why}`,
  });
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => BASE64URL.test(p)))
    return invalid('not a valid bearer token or JWT');
  const [h, p, s] = parts as [string, string, string];
  const header = decodeJson(h);
  if (!header) return invalid('malformed JWT header');
  if (header['alg'] !== 'HS256') return invalid('JWT alg must be HS256');
  if (header['crit'] !== undefined) return invalid('JWT crit header is not supported');
  const expected = createHmac('sha256', secret).update(`${h}.${p}`, 'ascii').digest();
  const given = Buffer.from(s, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return invalid('bad JWT signature');
  const claims = decodeJson(p);
  if (!claims) return invalid('malformed JWT payload');
  for (const c of ['exp', 'nbf', 'iat'])
    if (claims[c] !== undefined && (typeof claims[c] !== 'number' || !Number.isFinite(claims[c])))
      return invalid(`JWT ${c} must be a number`);
  // A token without exp would be good forever: a leaked one could never be shut out but by a new secret.
  if (claims['exp'] === undefined) return invalid('JWT exp is required');
  const exp = claims['exp'] as number;
  const nbf = claims['nbf'] as number | undefined;
  const iat = claims['iat'] as number | undefined;
  if (nowSeconds > exp + leewaySeconds)
    return { ok: false, code: 'AUTH.TOKEN_EXPIRED', message: 'The token has expired' };
  if (nbf !== undefined && nowSeconds + leewaySeconds < nbf)
    return { ok: false, code: 'AUTH.TOKEN_NOT_YET_VALID', message: 'The token is not valid yet (nbf)' };
  if (iat !== undefined && nowSeconds + leewaySeconds < iat) return invalid('JWT issued in the future (iat)');
  return { ok: true, claims };
}

/** Makes the function that checks an `Authorization` header against the configured tokens and secret. */
export function createAuthenticator(opts: AuthOptions): (authorization: string | undefined) => AuthResult {
  const digests = opts.tokens.map(sha256);
  const now = opts.now ?? Date.now;
  return (authorization) => {
    if (!authorization) return fail('AUTH.MISSING_TOKEN', 'Authorization: Bearer <token> is required');
    const m = /^Bearer +([^\s]+) *$/i.exec(authorization);
    if (!m?.[1]) return fail('AUTH.MISSING_TOKEN', 'Authorization must use the Bearer scheme');
    const token = m[1];
    if (token.length > MAX_TOKEN_LENGTH) return fail('AUTH.INVALID_TOKEN', 'Invalid token: too long');
    if (digests.length === 0 && !opts.jwtSecret)
      return fail(
        'AUTH.INVALID_TOKEN',
        'No API tokens are configured on this server (API_TOKENS, JWT_SECRET)',
      );
    // Every configured token is compared, whichever matches, so timing tells nothing about which.
    const given = sha256(token);
    let index = -1;
    for (const [i, d] of digests.entries()) if (timingSafeEqual(given, d) && index < 0) index = i;
    if (index >= 0) return { ok: true, principal: { kind: 'token', key: `token:${index}`, subject: null } };
    if (!opts.jwtSecret) return fail('AUTH.INVALID_TOKEN', 'Invalid token');
    const r = verifyHs256Jwt(token, opts.jwtSecret, Math.floor(now() / 1000), opts.leewaySeconds ?? 30);
    if (!r.ok) return { ok: false, code: r.code, message: r.message };
    const sub = typeof r.claims['sub'] === 'string' ? r.claims['sub'] : null;
    const key = sub !== null ? `jwt:sub:${sub.slice(0, 200)}` : `jwt:${given.toString('hex').slice(0, 32)}`;
    return { ok: true, principal: { kind: 'jwt', key, subject: sub } };
  };
}

function tooMany(res: Response, retryAfterSeconds: number): void {
  res.setHeader('Retry-After', String(retryAfterSeconds));
  res.status(429).json(errorBody('RATE_LIMITED', `Too many requests; retry in ${retryAfterSeconds} s`));
}

/**
 * Middleware: lets an authenticated request through (its principal in `res.locals.principal`) within
 * its token's rate limit; answers 401 with `WWW-Authenticate: Bearer` otherwise. Failed attempts are
 * limited per client address too, so tokens cannot be guessed at speed.
 */
export function requireBearer(
  authenticate: (authorization: string | undefined) => AuthResult,
  limiter: RateLimiter | null,
): RequestHandler {
  return (req, res, next) => {
    const result = authenticate(req.get('authorization'));
    if (!result.ok) {
      const gate = limiter?.take(`ip:${req.ip ?? 'unknown'}`);
      if (gate && !gate.allowed) return tooMany(res, gate.retryAfterSeconds);
      const challenge =
        result.code === 'AUTH.MISSING_TOKEN'
          ? 'Bearer realm="postroom"'
          : `Bearer realm="postroom", error="invalid_token", error_description="${result.message.replace(/["\\]/g, '')}"`;
      res.setHeader('WWW-Authenticate', challenge);
      req.log?.info({ code: result.code }, 'API request refused');
      res.status(401).json(errorBody(result.code, result.message));
      return;
    }
    res.locals['principal'] = result.principal;
    if (limiter) {
      const d = limiter.take(result.principal.key);
      res.setHeader('RateLimit-Limit', String(limiter.limit));
      res.setHeader('RateLimit-Remaining', String(d.remaining));
      if (!d.allowed) return tooMany(res, d.retryAfterSeconds);
    }
    next();
  };
}
