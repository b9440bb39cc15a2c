import express, { Router, type Request } from 'express';
import type { RateLimiter } from '../status-api/rate-limit.js';
import { cookieNames, preSession, readCookie, requireCsrf, setCookie } from './guard.js';
import type { ConsoleSessions } from './session.js';
import { renderPage } from './view.js';

/** Where to go after signing in: a console path only, never another site. */
function nextPath(value: unknown): string {
  return typeof value === 'string' && /^\/console(\/|\?|$)/.test(value) && !value.includes('\\')
    ? value
    : '/console';
}

/** `GET`/`POST /sign-in` (token or JWT in a password field) and `POST /sign-out`. */
export function signInRoutes(sessions: ConsoleSessions, limiter: RateLimiter | null): Router {
  const router = Router();
  const form = express.urlencoded({ extended: false, limit: 16 * 1024 });

  const show = (
    req: Request,
    res: express.Response,
    opts: { status?: number; error?: string; notice?: string; next: string },
  ) => {
    const pre = preSession(req, res);
    renderPage(
      res,
      'sign-in',
      {
        title: 'Sign in',
        csrf: null,
        who: null,
        notice: opts.error
          ? { kind: 'error', text: opts.error }
          : opts.notice
            ? { kind: 'ok', text: opts.notice }
            : null,
      },
      { signInCsrf: sessions.signInCsrfToken(pre), next: opts.next },
      opts.status ?? 200,
    );
  };

  router.get('/sign-in', (req, res) => {
    if (res.locals['session']) return res.redirect(303, nextPath(req.query['next']));
    show(req, res, {
      next: nextPath(req.query['next']),
      notice: req.query['signed-out'] === '1' ? 'You are signed out.' : undefined,
    });
  });

  router.post('/sign-in', form, (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const next = nextPath(body['next']);
    const pre = readCookie(req, cookieNames(req).preSession);
    const site = req.get('sec-fetch-site');
    if (
      !pre ||
      (site !== undefined && site !== 'same-origin' && site !== 'none') ||
      !sessions.checkCsrf(sessions.signInCsrfToken(pre), body['_csrf'])
    ) {
      req.log?.info('console sign-in refused: missing or wrong CSRF token');
      return show(req, res, {
        status: 403,
        error: 'This sign-in form had expired. Type your token again.',
        next,
      });
    }
    const result = sessions.signIn(typeof body['token'] === 'string' ? body['token'] : '');
    if (!result.ok) {
      const gate = limiter?.take(`ip:${req.ip ?? 'unknown'}`);
      if (gate && !gate.allowed) {
        res.setHeader('Retry-After', String(gate.retryAfterSeconds));
        return show(req, res, {
          status: 429,
          error: `Too many failed sign-ins from here. Try again in ${gate.retryAfterSeconds} s.`,
          next,
        });
      }
      req.log?.info('console sign-in refused');
      return show(req, res, { status: 401, error: `Sign-in refused: ${result.message}`, next });
    }
    const names = cookieNames(req);
    setCookie(req, res, names.session, result.cookie, sessions.ttl);
    setCookie(req, res, names.preSession, '', 0);
    req.log?.info({ principal: result.session.principal.key }, 'console sign-in');
    res.redirect(303, next);
  });

  router.post('/sign-out', form, requireCsrf(sessions), (req, res) => {
    setCookie(req, res, cookieNames(req).session, '', 0);
    res.redirect(303, '/console/sign-in?signed-out=1');
  });

  return router;
}
