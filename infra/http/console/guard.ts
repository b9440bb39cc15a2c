import { randomBytes } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import type { ConsoleSessions, Session } from './session.js';
import { renderPage } from './view.js';

/**
 * The console's protections: security headers on every answer, the session cookie, and the CSRF
 * check of every POST. Locals set here: `res.locals.session` (the signed-in session) and
 * `res.locals.csrf` (the token its forms carry).
 */

/** Strict CSP: our own script and stylesheet only, no inline code, images from ourselves only. */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

/** Headers of every console answer. */
export const securityHeaders: RequestHandler = (_req, res, next) => {
  res.setHeader('Content-Security-Policy', CONSOLE_CSP);
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  res.setHeader('Permissions-Policy', 'camera=(), microphone=(), geolocation=()');
  res.setHeader('Cache-Control', 'no-store');
  next();
};

/** Cookie names: `__Host-` ones over HTTPS (the browser then insists on Secure, Path=/ and no Domain). */
export function cookieNames(req: Request): { session: string; preSession: string } {
  return req.secure
    ? { session: '__Host-postroom-console', preSession: '__Host-postroom-sign-in' }
    : { session: 'postroom-console', preSession: 'postroom-sign-in' };
}

/** Reads one cookie from the request (no cookie library needed for two names). */
export function readCookie(req: Request, name: string): string | undefined {
  const header = req.get('cookie');
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Sets (or with `maxAgeSeconds` 0 clears) a console cookie: HttpOnly, SameSite=Strict, Secure over HTTPS. */
export function setCookie(
  req: Request,
  res: Response,
  name: string,
  value: string,
  maxAgeSeconds: number,
): void {
  const parts = [`${name}=${value}`, 'Path=/', `Max-Age=${maxAgeSeconds}`, 'HttpOnly', 'SameSite=Strict'];
  if (req.secure) parts.push('Secure');
  res.append('Set-Cookie', parts.join('; '));
}

/** The browser's pre-session value for the sign-in form's CSRF token, made when missing. */
export function preSession(req: Request, res: Response): string {
  const name = cookieNames(req).preSession;
  const given = readCookie(req, name);
  if (given && /^[A-Za-z0-9_-]{43}$/.test(given)) return given;
  const made = randomBytes(32).toString('base64url');
  setCookie(req, res, name, made, 3600);
  return made;
}

/** Loads the session (or not) into `res.locals.session` and its CSRF token into `res.locals.csrf`. */
export function loadSession(sessions: ConsoleSessions): RequestHandler {
  return (req, res, next) => {
    const session = sessions.open(readCookie(req, cookieNames(req).session));
    res.locals['session'] = session;
    res.locals['csrf'] = session ? sessions.csrfToken(session) : null;
    next();
  };
}

/** The session of a request that passed {@link requireSession}. */
export function sessionOf(res: Response): Session {
  return res.locals['session'] as Session;
}

/** Sends people who are not signed in to the sign-in page (and back here afterwards). */
export const requireSession: RequestHandler = (req, res, next) => {
  if (res.locals['session']) return next();
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.status(401).type('text').send('Sign in first: /console/sign-in');
    return;
  }
  const back = req.originalUrl.startsWith('/console') ? req.originalUrl : '/console';
  res.redirect(303, `/console/sign-in?next=${encodeURIComponent(back)}`);
};

/**
 * Refuses a POST that comes from another site (`Sec-Fetch-Site`) or lacks the session's CSRF token in
 * its `_csrf` field: 403.
 */
export function requireCsrf(sessions: ConsoleSessions): RequestHandler {
  return (req, res, next) => {
    const session = res.locals['session'] as Session | null;
    const body = (req.body ?? {}) as Record<string, unknown>;
    const site = req.get('sec-fetch-site');
    const ok =
      session !== null &&
      (site === undefined || site === 'same-origin' || site === 'none') &&
      sessions.checkCsrf(sessions.csrfToken(session), body['_csrf']);
    if (ok) return next();
    req.log?.info({ path: req.path }, 'console POST refused: missing or wrong CSRF token');
    renderPage(
      res,
      'error',
      { title: 'Refused', csrf: res.locals['csrf'] as string | null, who: null },
      {
        heading: 'This form was refused',
        message:
          'It did not carry this session’s form token (an old page, another site, or a signed-out session). Go back, reload the page and try again.',
      },
      403,
    );
  };
}
