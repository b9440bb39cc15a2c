import { randomUUID } from 'node:crypto';
import express, { type Express, type Router } from 'express';
import swaggerUi from 'swagger-ui-express';
import { ConfigError } from '../errors.js';
import type { Logger } from '../logger.js';
import { registry } from '../metrics.js';
import { errorHandler, notFound } from './errors.js';

declare module 'express-serve-static-core' {
  interface Request {
    /** Request-scoped logger with the request id bound. */
    log: Logger;
    /** Request id (from X-Request-Id when given, else a new UUID). */
    id: string;
  }
}

/** One dependency checked by /readyz. */
export interface ReadinessCheck {
  /** Shown in the /readyz answer (`rabbitmq`, `mysql`, `imap`). */
  name: string;
  /** Resolves to true when the dependency answers. */
  check(): Promise<boolean> | boolean;
  /** Extra facts shown in the answer. */
  detail?(): Record<string, unknown>;
}

/** What the app serves. */
export interface AppOptions {
  log: Logger;
  readiness: readonly ReadinessCheck[];
  /** The OpenAPI document served at /openapi.json and /docs. */
  openapi: () => Record<string, unknown>;
  /** `HTTP_TRUST_PROXY` (default `loopback`): see {@link trustProxySetting}. */
  trustProxy?: string;
}

/**
 * `HTTP_TRUST_PROXY` as Express's `trust proxy` takes it: `true`/`false`, a hop count, or a comma list
 * of addresses, CIDRs and the names `loopback`, `linklocal`, `uniquelocal`. Only a proxy it names may
 * say who the client is (X-Forwarded-For), which is the address failed logins are limited by.
 */
function trustProxySetting(value: string): boolean | number | string {
  if (value === 'true') return true;
  if (value === 'false') return false;
  return /^[0-9]+$/.test(value) ? Number(value) : value;
}

/** The app and where roles mount their routes once they start. */
export interface PostroomApp {
  app: Express;
  /** Mounts a role's router (status API, Telegram webhook) before the 404 handler. */
  mount(path: string, router: Router): void;
}

/**
 * The Express app of a process: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`, then the
 * routers of the roles it runs. Every answer carries `X-Request-Id`; every error is JSON.
 */
export function createApp(opts: AppOptions): PostroomApp {
  const app = express();
  // Roles start after the server listens (so /healthz and /readyz answer during start-up); their
  // routes go into this router, which sits before the 404 handler.
  const roleRoutes = express.Router();
  app.disable('x-powered-by');
  try {
    app.set('trust proxy', trustProxySetting(opts.trustProxy ?? 'loopback'));
  } catch (err) {
    throw new ConfigError([
      `HTTP_TRUST_PROXY: ${(err as Error).message} (got ${JSON.stringify(opts.trustProxy)})`,
    ]);
  }
  const log = opts.log.child({ module: 'http' });

  app.use((req, res, next) => {
    const given = req.get('x-request-id');
    req.id = given && /^[\w.-]{1,100}$/.test(given) ? given : randomUUID();
    req.log = log.child({ requestId: req.id });
    res.setHeader('X-Request-Id', req.id);
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (req.path === '/healthz' || req.path === '/metrics') return;
      // `remote`: the client as HTTP_TRUST_PROXY lets Express read it (the address failed logins are
      // limited by), beside NGINX's own `remote` in its line of the same requestId.
      req.log.info(
        {
          method: req.method,
          path: req.path,
          status: res.statusCode,
          ms: Math.round(ms * 10) / 10,
          remote: req.ip,
        },
        'request',
      );
    });
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', uptimeSeconds: Math.round(process.uptime()) });
  });

  app.get('/readyz', async (_req, res) => {
    const results = await Promise.all(
      opts.readiness.map(async (c) => {
        let ok = false;
        try {
          ok = await c.check();
        } catch {
          ok = false;
        }
        return [c.name, { ok, ...(c.detail?.() ?? {}) }] as const;
      }),
    );
    const ready = results.every(([, r]) => r.ok);
    res
      .status(ready ? 200 : 503)
      .json({ status: ready ? 'ready' : 'not ready', checks: Object.fromEntries(results) });
  });

  app.get('/metrics', async (_req, res, next) => {
    try {
      res.setHeader('Content-Type', registry.contentType);
      res.send(await registry.metrics());
    } catch (err) {
      next(err);
    }
  });

  app.get('/openapi.json', (_req, res) => {
    res.json(opts.openapi());
  });
  app.use('/docs', swaggerUi.serve, swaggerUi.setup(undefined, { swaggerOptions: { url: '/openapi.json' } }));

  app.use(roleRoutes);

  app.use(notFound);
  app.use(errorHandler);
  return { app, mount: (path, router) => void roleRoutes.use(path, router) };
}
