import express, { Router, type ErrorRequestHandler } from 'express';
import { PostroomError, ValidationError } from '../../errors.js';
import { HttpError } from '../errors.js';
import { createAuthenticator } from '../status-api/auth.js';
import type { StatusApiDeps } from '../status-api/deps.js';
import type { RateLimiter } from '../status-api/rate-limit.js';
import { deadLetterRoutes } from './dead-letters.routes.js';
import { jobRoutes } from './jobs.routes.js';
import { loadSession, requireSession, securityHeaders } from './guard.js';
import { mailRoutes } from './mail.routes.js';
import { pageContext } from './page.js';
import { ConsoleSessions } from './session.js';
import { signInRoutes } from './sign-in.routes.js';
import { statsRoutes } from './stats.routes.js';
import { STATIC_DIR, renderPage } from './view.js';

/** Where the console is mounted. */
export const CONSOLE_BASE = '/console';

/** What the console checks sign-ins against. */
export interface ConsoleOptions {
  /** `API_TOKENS`. */
  tokens: readonly string[];
  /** `JWT_SECRET`. */
  jwtSecret?: string;
  /** The API's limiter: failed sign-ins take from the same per-address bucket as failed API calls. */
  limiter: RateLimiter | null;
}

/** Errors as pages: what went wrong in words, never a stack trace. */
const errorPage: ErrorRequestHandler = (err: unknown, req, res, _next) => {
  let status = 500;
  let message = 'Something went wrong on the server; the error was logged. Try again.';
  if (err instanceof HttpError) {
    status = err.status;
    message = err.message;
  } else if (err instanceof ValidationError) {
    status = 400;
    message = err.message;
  } else if (
    typeof (err as { status?: unknown })?.status === 'number' &&
    (err as { status: number }).status >= 400 &&
    (err as { status: number }).status < 500
  ) {
    // body-parser and serve-static errors carry their status.
    status = (err as { status: number }).status;
    message = status === 404 ? 'Not found' : 'The request was refused';
  } else if (err instanceof PostroomError && err.retryable) {
    status = 503;
    message = 'A dependency (MySQL or RabbitMQ) is unavailable; try again in a moment.';
  }
  if (status >= 500) req.log?.error({ err }, 'console request failed');
  if (res.headersSent) return void res.destroy();
  renderPage(
    res,
    'error',
    pageContext(res, status === 404 ? 'Not found' : 'Error'),
    { heading: status === 404 ? 'Not found' : `Error ${status}`, message },
    status,
  );
};

/**
 * The operator console (`/console`): server-rendered pages over the status API's repositories,
 * behind a session made from an API token or a JWT. Works without JavaScript; the one script only
 * keeps the processing count live.
 */
export function createConsoleRouter(deps: StatusApiDeps, opts: ConsoleOptions): Router {
  const sessions = new ConsoleSessions({
    tokens: opts.tokens,
    jwtSecret: opts.jwtSecret,
    authenticate: createAuthenticator({ tokens: opts.tokens, jwtSecret: opts.jwtSecret }),
  });
  const router = Router();
  router.use(securityHeaders);
  router.use(
    '/static',
    express.static(STATIC_DIR, { index: false, fallthrough: false, maxAge: '1h', dotfiles: 'deny' }),
  );
  router.use(loadSession(sessions));
  router.use(signInRoutes(sessions, opts.limiter));
  router.use(requireSession);
  router.use(mailRoutes(deps));
  router.use(deadLetterRoutes(deps, sessions));
  router.use(jobRoutes(deps, sessions));
  router.use(statsRoutes(deps));
  router.use((req, res) => {
    renderPage(
      res,
      'error',
      pageContext(res, 'Not found'),
      {
        heading: 'Not found',
        message: `There is no console page ${req.path}`,
      },
      404,
    );
  });
  router.use(errorPage);
  return router;
}

/** `GET /` sends people to the console. */
export function rootRedirect(): Router {
  const router = Router();
  router.get('/', (_req, res) => res.redirect(302, `${CONSOLE_BASE}`));
  return router;
}
