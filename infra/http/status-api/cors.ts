import type { RequestHandler } from 'express';

/**
 * CORS for the API, off unless `API_CORS_ORIGINS` lists origins (or `*`). Allowed origins get the
 * `Access-Control-*` headers and their preflights a 204; nothing is sent to any other origin, so a
 * browser keeps refusing them. Credentials (cookies) are never allowed: the API takes bearer tokens.
 */
export function corsMiddleware(setting: string | undefined): RequestHandler {
  const list = (setting ?? '')
    .split(',')
    .map((o) => o.trim().replace(/\/+$/, ''))
    .filter(Boolean);
  const any = list.includes('*');
  const allowed = new Set(list);
  return (req, res, next) => {
    if (list.length === 0) return next();
    const origin = req.get('origin');
    if (!origin || !(any || allowed.has(origin))) return next();
    res.setHeader('Access-Control-Allow-Origin', any ? '*' : origin);
    if (!any) res.append('Vary', 'Origin');
    res.setHeader(
      'Access-Control-Expose-Headers',
      'X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, WWW-Authenticate',
    );
    if (req.method === 'OPTIONS' && req.get('access-control-request-method')) {
      res.setHeader('Access-Control-Allow-Methods', 'GET, POST');
      res.setHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type, X-Request-Id');
      res.setHeader('Access-Control-Max-Age', '600');
      res.status(204).end();
      return;
    }
    next();
  };
}
