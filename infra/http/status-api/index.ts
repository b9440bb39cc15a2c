import express, { Router, type ErrorRequestHandler, type RequestHandler } from 'express';
import { PostroomError, RetryableError } from '../../errors.js';
import type { RoleContext, RoleHandle } from '../../roles.js';
import { CONSOLE_BASE, createConsoleRouter, rootRedirect } from '../console/index.js';
import { consolePaths } from '../console/openapi-paths.js';
import { errorBody } from '../errors.js';
import { createAuthenticator, requireBearer } from './auth.js';
import { corsMiddleware } from './cors.js';
import { deadLetterRoutes } from './dead-letters.routes.js';
import type { StatusApiDeps } from './deps.js';
import { attachmentRoutes } from './attachments.routes.js';
import { contentRoutes } from './content.routes.js';
import { lazyFileStore } from '../../drive/drive-client.js';
import { emailRoutes } from './emails.routes.js';
import { jobComponentSchemas } from './jobs.schemas.js';
import { jobRoutes, jobsApiPaths } from './jobs.routes.js';
import { statusApiPaths } from './openapi-paths.js';
import { openApiParameters } from './validate.js';
import { API_BASE } from './present.js';
import { createQueueDepthReader } from './queue-depths.js';
import { RateLimiter } from './rate-limit.js';
import { componentSchemas } from './schemas.js';
import { servePipelineMetrics } from './pipeline-metrics.js';
import { buildStats, statsRoutes } from './stats.routes.js';

export type { StatusApiDeps } from './deps.js';

/** Largest request body accepted (the API takes no real bodies; replay takes none at all). */
export const MAX_BODY_BYTES = 16 * 1024;

/** What the `/api/v1` router checks besides its dependencies. */
export interface StatusRouterOptions {
  /** `API_TOKENS`. */
  tokens: readonly string[];
  /** `JWT_SECRET`. */
  jwtSecret?: string;
  /** `API_CORS_ORIGINS`. */
  corsOrigins?: string;
  /** The per-token limiter (null: no limit). */
  limiter: RateLimiter | null;
}

const tooLarge: RequestHandler = (req, res, next) => {
  const length = Number(req.get('content-length') ?? 0);
  if (length > MAX_BODY_BYTES) {
    res
      .status(413)
      .json(errorBody('PAYLOAD_TOO_LARGE', `Request bodies are limited to ${MAX_BODY_BYTES} bytes`));
    return;
  }
  next();
};

const noStore: RequestHandler = (_req, res, next) => {
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  next();
};

/** Database connection failures become 503 (try again) instead of 500. */
const unavailable: ErrorRequestHandler = (err: unknown, _req, _res, next) => {
  const e = err as { fatal?: unknown; code?: unknown } | null;
  const lost = [
    'ECONNREFUSED',
    'ECONNRESET',
    'ETIMEDOUT',
    'PROTOCOL_CONNECTION_LOST',
    'ER_CON_COUNT_ERROR',
    'POOL_CLOSED',
  ];
  if (!(err instanceof PostroomError) && (e?.fatal === true || lost.includes(String(e?.code))))
    next(new RetryableError('DB.UNAVAILABLE', 'MySQL is unavailable', { cause: err }));
  else next(err);
};

/**
 * The `/api/v1` router: CORS (when configured), body limit, bearer auth and rate limit, then the
 * routes. Errors go on to the app's JSON error handler.
 */
export function createStatusRouter(deps: StatusApiDeps, opts: StatusRouterOptions): Router {
  const router = Router();
  router.use(corsMiddleware(opts.corsOrigins));
  router.use(tooLarge);
  router.use(
    requireBearer(createAuthenticator({ tokens: opts.tokens, jwtSecret: opts.jwtSecret }), opts.limiter),
  );
  router.use(express.json({ limit: MAX_BODY_BYTES }));
  router.use(noStore);
  router.use(emailRoutes(deps));
  router.use(attachmentRoutes(deps));
  router.use(contentRoutes(deps));
  router.use(statsRoutes(deps));
  router.use(deadLetterRoutes(deps));
  router.use(jobRoutes(deps));
  router.use(unavailable);
  return router;
}

/**
 * Starts the status API (role `api`): the `/api/v1` routes of SPEC.md behind bearer auth and the
 * rate limit, and their part of the OpenAPI document; and the operator console at `/console` over the
 * same dependencies (`GET /` redirects there).
 */
export async function startStatusApi(ctx: RoleContext): Promise<RoleHandle> {
  const { config, log } = ctx;
  if (config.apiTokens.length === 0 && !config.JWT_SECRET)
    log.warn('API_TOKENS and JWT_SECRET are both unset: /api/* answers 401 to every request');
  if (config.JWT_SECRET && Buffer.byteLength(config.JWT_SECRET) < 32)
    log.warn('JWT_SECRET is shorter than 32 bytes: HS256 secrets that short can be guessed offline');
  const limiter =
    config.API_RATE_LIMIT_PER_MINUTE > 0
      ? new RateLimiter({ perMinute: config.API_RATE_LIMIT_PER_MINUTE })
      : null;
  const apiLog = log.child({ module: 'status-api' });
  const depths = await createQueueDepthReader(ctx.broker, apiLog);
  const deps: StatusApiDeps = {
    db: ctx.db,
    broker: ctx.broker,
    blobs: ctx.blobs,
    log: apiLog,
    files: lazyFileStore({ config, db: ctx.db, log: apiLog }),
    queueDepths: () => depths.read(),
  };
  const unserveMetrics = servePipelineMetrics(async () => {
    const s = await buildStats(deps);
    return {
      oldestPendingSeconds: {
        email: s.emails.oldestPendingSeconds,
        ...Object.fromEntries(
          Object.entries(s.stages).map(([stage, v]) => [stage, v ? v.oldestPendingSeconds : null]),
        ),
        outbox: s.outbox.oldestPendingSeconds,
      },
      queues:
        s.queues?.map((q) => ({ consumer: q.consumer, messages: q.messages, consumers: q.consumers })) ??
        null,
      deadQueueMessages: s.deadQueue?.messages ?? null,
    };
  });
  const router = createStatusRouter(deps, {
    tokens: config.apiTokens,
    jwtSecret: config.JWT_SECRET,
    corsOrigins: config.API_CORS_ORIGINS,
    limiter,
  });
  log.info(
    {
      tokens: config.apiTokens.length,
      jwt: Boolean(config.JWT_SECRET),
      rateLimitPerMinute: limiter?.limit ?? 0,
      cors: Boolean(config.API_CORS_ORIGINS),
    },
    'status API ready',
  );
  const consoleRouter = createConsoleRouter(deps, {
    tokens: config.apiTokens,
    jwtSecret: config.JWT_SECRET,
    limiter,
  });
  return {
    routers: [
      { path: API_BASE, router },
      { path: CONSOLE_BASE, router: consoleRouter },
      { path: '/', router: rootRedirect() },
    ],
    openapi: {
      paths: { ...statusApiPaths, ...jobsApiPaths(openApiParameters), ...consolePaths },
      schemas: { ...componentSchemas, ...jobComponentSchemas },
    },
    async stop() {
      limiter?.stop();
      unserveMetrics();
      depths.stop();
    },
  };
}
