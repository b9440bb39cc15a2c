import type { Response } from 'express';
import type { Session } from './session.js';
import type { PageContext } from './view.js';

/** Who a session belongs to, for the header: the JWT's subject, or which API token. */
export function describePrincipal(session: Session | null): string | null {
  if (!session) return null;
  const p = session.principal;
  if (p.kind === 'jwt') return p.subject ?? 'JWT';
  return `API token ${Number(p.key.replace('token:', '')) + 1}`;
}

/** The page context of a signed-in page. */
export function pageContext(
  res: Response,
  title: string,
  nav?: PageContext['nav'],
  notice?: PageContext['notice'],
): PageContext {
  return {
    title,
    nav,
    csrf: (res.locals['csrf'] as string | null) ?? null,
    who: describePrincipal((res.locals['session'] as Session | null) ?? null),
    notice: notice ?? null,
  };
}
