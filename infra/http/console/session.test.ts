import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createAuthenticator } from '../status-api/auth.js';
import { ConsoleSessions } from './session.js';

const SECRET = 'a-jwt-secret-of-at-least-thirty-two-bytes!';

function jwt(claims: Record<string, unknown>, secret = SECRET): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const head = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc(claims)}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

function sessions(opts: { tokens?: string[]; jwtSecret?: string; now?: () => number } = {}) {
  const tokens = opts.tokens ?? ['tok-one', 'tok-two'];
  const jwtSecret = opts.jwtSecret ?? SECRET;
  return new ConsoleSessions({
    tokens,
    jwtSecret,
    authenticate: createAuthenticator({ tokens, jwtSecret, now: opts.now }),
    ttlSeconds: 3600,
    now: opts.now,
  });
}

describe('console sessions', () => {
  it('signs in with an API token; the cookie opens to that token and does not show it', () => {
    const s = sessions();
    const r = s.signIn('  tok-two ');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.cookie).not.toContain('tok-two');
    expect(Buffer.from(r.cookie, 'base64url').toString('latin1')).not.toContain('tok-two');
    expect(s.open(r.cookie)).toMatchObject({
      id: r.session.id,
      principal: { kind: 'token', key: 'token:1' },
    });
  });

  it('refuses a wrong token, a blank one and one with spaces inside, saying why', () => {
    const s = sessions();
    expect(s.signIn('nope')).toEqual({
      ok: false,
      message: 'Invalid token: not a valid bearer token or JWT',
    });
    expect(s.signIn('   ')).toEqual({ ok: false, message: 'Type an API token or a JWT' });
    expect(s.signIn('tok one').ok).toBe(false);
  });

  it('refuses a cookie changed by one bit, or made by a server with other credentials', () => {
    const s = sessions();
    const r = s.signIn('tok-one');
    if (!r.ok) throw new Error('sign-in failed');
    const raw = Buffer.from(r.cookie, 'base64url');
    raw[raw.length - 1] = raw[raw.length - 1]! ^ 1;
    expect(s.open(raw.toString('base64url'))).toBeNull();
    expect(s.open('garbage')).toBeNull();
    expect(s.open(undefined)).toBeNull();
    expect(sessions({ tokens: ['tok-one', 'tok-three'] }).open(r.cookie)).toBeNull();
  });

  it('ends a session at its lifetime, and a JWT session when the JWT expires', () => {
    let now = Date.UTC(2026, 11, 3, 8, 0, 0);
    const s = sessions({ now: () => now });
    const token = s.signIn('tok-one');
    const short = s.signIn(jwt({ sub: 'ops@example.com', exp: Math.floor(now / 1000) + 600 }));
    if (!token.ok || !short.ok) throw new Error('sign-in failed');
    expect(s.open(short.cookie)?.principal).toMatchObject({ kind: 'jwt', subject: 'ops@example.com' });
    now += 700_000; // past the JWT's exp and its 30 s leeway
    expect(s.open(short.cookie)).toBeNull();
    expect(s.open(token.cookie)).not.toBeNull();
    now += 3_000_000; // past the session's hour
    expect(s.open(token.cookie)).toBeNull();
  });

  it('binds CSRF tokens to one session, and sign-in tokens to one browser', () => {
    const s = sessions();
    const a = s.signIn('tok-one');
    const b = s.signIn('tok-one');
    if (!a.ok || !b.ok) throw new Error('sign-in failed');
    const tokenA = s.csrfToken(a.session);
    expect(s.checkCsrf(tokenA, tokenA)).toBe(true);
    expect(s.checkCsrf(s.csrfToken(b.session), tokenA)).toBe(false);
    expect(s.checkCsrf(tokenA, undefined)).toBe(false);
    expect(s.checkCsrf(tokenA, '')).toBe(false);
    expect(s.signInCsrfToken('browser-1')).not.toBe(s.signInCsrfToken('browser-2'));
  });
});
