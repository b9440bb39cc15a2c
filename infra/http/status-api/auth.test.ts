import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createAuthenticator, verifyHs256Jwt } from './auth.js';

const SECRET = 'unit-secret-unit-secret-unit-secret!';
const NOW = 1_800_000_000;
const part = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
function sign(header: unknown, claims: unknown, secret = SECRET): string {
  const h = part(header);
  const p = part(claims);
  return `${h}.${p}.${createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url')}`;
}
const hs = { alg: 'HS256', typ: 'JWT' };

describe('verifyHs256Jwt', () => {
  const verify = (token: string) => verifyHs256Jwt(token, SECRET, NOW, 30);

  it('accepts a good token and returns its claims', () => {
    expect(verify(sign(hs, { sub: 'ops', exp: NOW + 60, nbf: NOW - 60, iat: NOW }))).toEqual({
      ok: true,
      claims: { sub: 'ops', exp: NOW + 60, nbf: NOW - 60, iat: NOW },
    });
  });

  it('checks exp, nbf and iat with the leeway', () => {
    expect(verify(sign(hs, { exp: NOW - 30 })).ok).toBe(true);
    expect(verify(sign(hs, { exp: NOW - 31 }))).toMatchObject({ ok: false, code: 'AUTH.TOKEN_EXPIRED' });
    expect(verify(sign(hs, { exp: NOW + 60, nbf: NOW + 30 })).ok).toBe(true);
    expect(verify(sign(hs, { exp: NOW + 60, nbf: NOW + 31 }))).toMatchObject({
      ok: false,
      code: 'AUTH.TOKEN_NOT_YET_VALID',
    });
    expect(verify(sign(hs, { exp: NOW + 60, iat: NOW + 31 }))).toMatchObject({
      ok: false,
      code: 'AUTH.INVALID_TOKEN',
    });
    expect(verify(sign(hs, { exp: 'tomorrow' }))).toMatchObject({ ok: false, code: 'AUTH.INVALID_TOKEN' });
  });

  it('refuses a token without exp, which would be good forever', () => {
    expect(verify(sign(hs, { sub: 'ops', iat: NOW }))).toEqual({
      ok: false,
      code: 'AUTH.INVALID_TOKEN',
      message: 'Invalid token: JWT exp is required',
    });
  });

  it('refuses other algorithms, crit headers, bad signatures and malformed tokens', () => {
    for (const header of [
      { alg: 'none' },
      { alg: 'HS384' },
      { alg: 'RS256' },
      { typ: 'JWT' },
      { alg: 'HS256', crit: ['exp'] },
    ])
      expect(verify(sign(header, { sub: 'x' })).ok, JSON.stringify(header)).toBe(false);
    expect(verify(sign(hs, { sub: 'x' }, 'other-secret')).ok).toBe(false);
    const good = sign(hs, { sub: 'x' });
    expect(verify(`${good}x`).ok).toBe(false);
    expect(verify(good.slice(0, -2)).ok).toBe(false);
    for (const bad of [
      '',
      'a.b',
      'a.b.c.d',
      `${part('nope')}.${part({})}.abc`,
      `${part(hs)}.${part('[1]')}.abc`,
      `${part(hs)}.e30.=`,
    ])
      expect(verify(bad).ok, bad).toBe(false);
    expect(verify(sign(hs, [1, 2])).ok).toBe(false); // a payload that is not an object
  });
});

describe('createAuthenticator', () => {
  it('accepts configured tokens and JWTs, naming buckets without secrets', () => {
    const auth = createAuthenticator({ tokens: ['alpha', 'beta'], jwtSecret: SECRET, now: () => NOW * 1000 });
    expect(auth('Bearer beta')).toEqual({
      ok: true,
      principal: { kind: 'token', key: 'token:1', subject: null },
    });
    expect(auth('bearer alpha')).toMatchObject({ ok: true, principal: { key: 'token:0' } });
    expect(auth(`Bearer ${sign(hs, { sub: 'ops', exp: NOW + 60 })}`)).toMatchObject({
      ok: true,
      principal: { kind: 'jwt', key: 'jwt:sub:ops', subject: 'ops' },
    });
    const anonymous = auth(`Bearer ${sign(hs, { exp: NOW + 60 })}`);
    expect(anonymous).toMatchObject({ ok: true, principal: { kind: 'jwt', subject: null } });
    expect(JSON.stringify(anonymous)).not.toContain(SECRET);
  });

  it('refuses missing, malformed, unknown and over-long tokens', () => {
    const auth = createAuthenticator({ tokens: ['alpha'] });
    expect(auth(undefined)).toMatchObject({ ok: false, code: 'AUTH.MISSING_TOKEN' });
    expect(auth('Basic YTpi')).toMatchObject({ ok: false, code: 'AUTH.MISSING_TOKEN' });
    expect(auth('Bearer')).toMatchObject({ ok: false, code: 'AUTH.MISSING_TOKEN' });
    expect(auth('Bearer alph')).toMatchObject({ ok: false, code: 'AUTH.INVALID_TOKEN' });
    expect(auth('Bearer alphaa')).toMatchObject({ ok: false, code: 'AUTH.INVALID_TOKEN' });
    expect(auth(`Bearer ${sign(hs, { exp: NOW + 60 })}`)).toMatchObject({
      ok: false,
      code: 'AUTH.INVALID_TOKEN',
    }); // no JWT_SECRET
    expect(auth(`Bearer ${'a'.repeat(9000)}`)).toMatchObject({ ok: false, code: 'AUTH.INVALID_TOKEN' });
    expect(createAuthenticator({ tokens: [] })('Bearer alpha')).toMatchObject({
      ok: false,
      code: 'AUTH.INVALID_TOKEN',
    });
  });
});
