import { lookup } from 'node:dns/promises';
import { BlockList, isIP, isIPv4 } from 'node:net';
import { PermanentError, RetryableError } from '../errors.js';

/** Resolves a host name to every address it has (the system resolver by default; tests inject theirs). */
export type Resolver = (hostname: string) => Promise<readonly { address: string; family: number }[]>;

/** The system resolver (getaddrinfo, as the rest of the process sees names), every address. */
const systemResolver: Resolver = (hostname) => lookup(hostname, { all: true, verbatim: true });

/** Why an address may not be called, by range. */
const RANGES: readonly [cidr: string, why: string][] = [
  ['0.0.0.0/8', 'unspecified'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'shared (CGNAT)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'],
  ['192.0.2.0/24', 'documentation'],
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'benchmarking'],
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['100::/64', 'discard'],
  ['2001:db8::/32', 'documentation'],
  ['fc00::/7', 'private (unique local)'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'site-local'],
  ['ff00::/8', 'multicast'],
];

const lists = RANGES.map(([cidr, why]) => {
  const [net, bits] = cidr.split('/') as [string, string];
  const list = new BlockList();
  list.addSubnet(net, Number(bits), isIPv4(net) ? 'ipv4' : 'ipv6');
  return { list, why, v4: isIPv4(net) };
});

/** Expands an IPv6 address to its 16 bytes (input already known to be valid IPv6). */
function ipv6Bytes(address: string): number[] {
  let text = address.split('%')[0] ?? address;
  const tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    tail.push(...dotted[1].split('.').map(Number));
    text = text.slice(0, -dotted[1].length) + '0:0';
  }
  const [head, rest] = text.includes('::') ? (text.split('::') as [string, string]) : [text, null];
  const words = (s: string) => (s ? s.split(':').map((w) => parseInt(w, 16)) : []);
  const h = words(head);
  const r = rest === null ? [] : words(rest);
  const all = [...h, ...new Array<number>(8 - h.length - r.length).fill(0), ...r];
  const bytes = all.flatMap((w) => [w >> 8, w & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

/**
 * The IPv4 address an IPv6 address stands for, when it embeds one a network may route to an IPv4
 * host: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96` and 6to4
 * `2002::/16`. Null otherwise.
 */
export function embeddedIpv4(address: string): string | null {
  const b = ipv6Bytes(address);
  const zero = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  const v4 = (at: number) => b.slice(at, at + 4).join('.');
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return v4(12);
  if (zero(0, 12)) return v4(12); // ::a.b.c.d (:: and ::1 are caught by their own ranges first)
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zero(4, 12)) return v4(12);
  if (b[0] === 0x20 && b[1] === 0x02) return v4(2);
  return null;
}

/**
 * Why an IP address must not be called (`loopback`, `private`, `link-local`, ...), or null when it is
 * a public unicast address. IPv6 forms of IPv4 addresses are judged by the IPv4 address inside.
 */
export function blockedReason(address: string): string | null {
  const family = isIP(address);
  if (family === 0) return 'not an IP address';
  for (const { list, why, v4 } of lists) {
    if (family === 4 && !v4) continue;
    try {
      if (list.check(address, family === 4 ? 'ipv4' : 'ipv6')) return why;
    } catch {
      return 'not a plain IP address'; // a zone id (`fe80::1%eth0`) or the like: never called
    }
  }
  if (family === 6) {
    const inner = embeddedIpv4(address);
    if (inner) {
      const why = blockedReason(inner);
      if (why) return `${why}, as IPv6 ${address}`;
    }
  }
  return null;
}

/** A host name as compared with OUTBOUND_ALLOW_HOSTS: lower case, no brackets, no final dot. */
export function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  // Entries are read the way URLs read them, so `2130706433` or `[::1]:8080` mean what a URL means.
  try {
    h = new URL(`http://${h}`).hostname;
  } catch {
    // Not a valid host at all: kept as written; it can never match a URL's host.
  }
  return h.replace(/^\[|\]$/g, '').replace(/\.$/, '');
}

/** Where a call may connect: the checked address and why it was allowed. */
export interface ResolvedTarget {
  /** The URL's host name, normalized. */
  hostname: string;
  /** The one address the connection must use (it was checked). */
  address: string;
  /** 4 or 6. */
  family: 4 | 6;
  /** True when the host is in OUTBOUND_ALLOW_HOSTS (the address ranges were not checked). */
  allowListed: boolean;
}

/** Options of `resolveTarget`. */
export interface TargetPolicy {
  /** OUTBOUND_ALLOW_HOSTS, normalized with `normalizeHost`. */
  allowHosts: ReadonlySet<string>;
  /** Name resolution (default: the system resolver). */
  resolve?: Resolver;
  /** Limit of the lookup in milliseconds. */
  timeoutMs: number;
}

/**
 * Checks a URL before anything connects: http or https only; the host (an IP in any spelling, already
 * normalized by WHATWG URL parsing, or a name resolved here, once) must have no loopback, private,
 * link-local, unspecified, multicast or otherwise reserved address, unless it is allow-listed.
 * Returns the address to connect to. Throws `PermanentError` (`OUTBOUND.BLOCKED`) for a refused
 * target and `RetryableError` (`OUTBOUND.DNS`) when the name does not resolve now.
 */
export async function resolveTarget(rawUrl: string, policy: TargetPolicy): Promise<ResolvedTarget> {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch (err) {
    throw new PermanentError('OUTBOUND.BLOCKED', 'The hook URL is not an absolute URL', { cause: err });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new PermanentError('OUTBOUND.BLOCKED', `Only http and https are called, not ${url.protocol}`);
  const hostname = url.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '');
  const allowListed = policy.allowHosts.has(hostname);
  let addresses: readonly { address: string; family: number }[];
  if (isIP(hostname)) addresses = [{ address: hostname, family: isIP(hostname) }];
  else {
    let timer: NodeJS.Timeout | undefined;
    try {
      addresses = await Promise.race([
        (policy.resolve ?? systemResolver)(hostname),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`lookup took longer than ${policy.timeoutMs} ms`)),
            policy.timeoutMs,
          );
        }),
      ]);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new RetryableError(
        'OUTBOUND.DNS',
        `Could not resolve ${hostname}: ${code ?? (err as Error).message}`,
        { cause: err },
      );
    } finally {
      clearTimeout(timer);
    }
    if (addresses.length === 0) throw new RetryableError('OUTBOUND.DNS', `${hostname} has no address`);
  }
  if (!allowListed) {
    for (const a of addresses) {
      const why = blockedReason(a.address);
      if (why)
        throw new PermanentError(
          'OUTBOUND.BLOCKED',
          `Refused ${hostname}: it resolves to ${a.address} (${why}); list the host in OUTBOUND_ALLOW_HOSTS to allow it`,
        );
    }
  }
  const first = addresses[0]!;
  return { hostname, address: first.address, family: isIP(first.address) === 6 ? 6 : 4, allowListed };
}
