import { describe, expect, it } from 'vitest';
import { PermanentError, RetryableError } from '../errors.js';
import {
  blockedReason,
  embeddedIpv4,
  normalizeHost,
  resolveTarget,
  type Resolver,
} from './address-policy.js';

const fixed =
  (table: Record<string, string[]>): Resolver =>
  async (hostname) => {
    const list = table[hostname];
    if (!list) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return list.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

const policy = (allow: string[] = [], resolve?: Resolver) => ({
  allowHosts: new Set(allow.map(normalizeHost)),
  resolve: resolve ?? fixed({}),
  timeoutMs: 1_000,
});

describe('address policy', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'link-local'],
    ['0.0.0.0', 'unspecified'],
    ['100.64.0.1', 'shared (CGNAT)'],
    ['224.0.0.251', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['fc00::1', 'private (unique local)'],
    ['fd12:3456::1', 'private (unique local)'],
    ['fe80::1', 'link-local'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:a9fe:a9fe', 'link-local'],
    ['::ffff:10.0.0.1', 'private'],
    ['64:ff9b::a9fe:a9fe', 'link-local, as IPv6 64:ff9b::a9fe:a9fe'],
    ['2002:7f00:1::', 'loopback, as IPv6 2002:7f00:1::'],
    ['::127.0.0.1', 'loopback'],
  ])('refuses %s (%s)', (address, why) => {
    expect(blockedReason(address)).toContain(why);
  });

  it.each([
    '93.184.216.34',
    '8.8.8.8',
    '172.32.0.1',
    '100.128.0.1',
    '2606:4700::1111',
    '::ffff:8.8.8.8',
    '2002:0808:0808::',
  ])('lets public %s through', (address) => {
    expect(blockedReason(address)).toBeNull();
  });

  it('reads the IPv4 address inside mapped, compatible, NAT64 and 6to4 forms', () => {
    expect(embeddedIpv4('::ffff:7f00:1')).toBe('127.0.0.1');
    expect(embeddedIpv4('0:0:0:0:0:ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(embeddedIpv4('64:ff9b::10.0.0.1')).toBe('10.0.0.1');
    expect(embeddedIpv4('2002:c0a8:0101::1')).toBe('192.168.1.1');
    expect(embeddedIpv4('2606:4700::1111')).toBeNull();
  });

  it.each([
    'http://127.0.0.1/',
    'http://169.254.169.254/latest/meta-data/',
    'http://0x7f000001/',
    'http://2130706433/',
    'http://0177.0.0.1/',
    'http://127.1/',
    'http://0/',
    'http://[::ffff:127.0.0.1]/',
    'http://[::1]:8080/',
    'http://[fe80::1]/',
  ])('refuses %s before resolving or connecting (WHATWG URL spellings normalized)', async (url) => {
    const err = await resolveTarget(url, policy()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe('OUTBOUND.BLOCKED');
  });

  it('refuses a name when any of its addresses is private, and names it', async () => {
    const resolve = fixed({
      'mixed.example': ['93.184.216.34', '10.0.0.7'],
      'inside.example': ['192.168.0.10'],
    });
    await expect(resolveTarget('https://mixed.example/hook', policy([], resolve))).rejects.toThrow(
      /Refused mixed\.example: it resolves to 10\.0\.0\.7 \(private\)/,
    );
    await expect(resolveTarget('https://inside.example/hook', policy([], resolve))).rejects.toThrow(
      /192\.168\.0\.10/,
    );
  });

  it('refuses localhost as the system resolver answers it', async () => {
    await expect(
      resolveTarget('http://localhost:9/', { allowHosts: new Set(), timeoutMs: 2_000 }),
    ).rejects.toThrow(/Refused localhost: it resolves to (127\.0\.0\.1|::1) \(loopback\)/);
  });

  it('refuses other schemes', async () => {
    await expect(resolveTarget('file:///etc/passwd', policy())).rejects.toThrow(
      /Only http and https are called, not file:/,
    );
    await expect(resolveTarget('gopher://x.example/', policy())).rejects.toThrow(PermanentError);
  });

  it('allows listed hosts, in any spelling, and pins the first address', async () => {
    expect(await resolveTarget('http://127.0.0.1:8080/', policy(['127.0.0.1']))).toEqual({
      hostname: '127.0.0.1',
      address: '127.0.0.1',
      family: 4,
      allowListed: true,
    });
    expect((await resolveTarget('http://2130706433/', policy(['127.0.0.1']))).allowListed).toBe(true);
    expect((await resolveTarget('http://[::1]/', policy(['[::1]']))).address).toBe('::1');
    const resolve = fixed({ 'hooks.internal': ['10.0.0.5', '10.0.0.6'] });
    expect(
      await resolveTarget('http://HOOKS.internal./x', policy(['hooks.internal'], resolve)),
    ).toMatchObject({
      address: '10.0.0.5',
      allowListed: true,
    });
    const pub = fixed({ 'api.example': ['2606:4700::1111'] });
    expect(await resolveTarget('https://api.example/', policy([], pub))).toMatchObject({
      address: '2606:4700::1111',
      family: 6,
      allowListed: false,
    });
  });

  it('treats a failed or slow lookup as retryable', async () => {
    await expect(resolveTarget('https://nowhere.example/', policy())).rejects.toBeInstanceOf(RetryableError);
    const slow: Resolver = () => new Promise(() => undefined);
    const err = await resolveTarget('https://slow.example/', {
      allowHosts: new Set(),
      resolve: slow,
      timeoutMs: 50,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryableError);
    expect((err as Error).message).toContain('lookup took longer than 50 ms');
  });
});
