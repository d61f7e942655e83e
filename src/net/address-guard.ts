import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/**
 * SSRF guard: which addresses outbound requests chosen by API users (webhook URLs, custom proxies)
 * may reach. Resolve once, check every address, then connect to the checked address only (see
 * `pinnedLookup`), so a DNS answer that changes between check and connect (rebinding) cannot win.
 */

export type AddressClass =
  | 'public'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'cgnat'
  | 'link_local'
  | 'metadata'
  | 'unique_local'
  | 'multicast'
  | 'documentation'
  | 'reserved';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to every address it has. */
export type Resolver = (host: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = async (host) =>
  (await lookup(host, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));

export class AddressRefusedError extends Error {
  constructor(
    readonly host: string,
    readonly address: string | undefined,
    readonly addressClass: AddressClass | 'unresolvable',
  ) {
    super(
      address
        ? `${host} resolves to ${address}, a ${addressClass.replace('_', '-')} address, which is not allowed`
        : `${host} could not be resolved`,
    );
    this.name = 'AddressRefusedError';
  }
}

type Range = { bytes: number[]; bits: number; cls: AddressClass };

const v4 = (cidr: string, cls: AddressClass): Range => {
  const [ip, bits] = cidr.split('/');
  return { bytes: ip!.split('.').map(Number), bits: Number(bits), cls };
};
const v6 = (cidr: string, cls: AddressClass): Range => {
  const [ip, bits] = cidr.split('/');
  return { bytes: parseIPv6(ip!)!, bits: Number(bits), cls };
};

// Most specific first: the metadata address sits inside link-local / unique-local.
const V4_RANGES: Range[] = [
  v4('169.254.169.254/32', 'metadata'),
  v4('100.100.100.200/32', 'metadata'),
  v4('0.0.0.0/8', 'unspecified'),
  v4('10.0.0.0/8', 'private'),
  v4('100.64.0.0/10', 'cgnat'),
  v4('127.0.0.0/8', 'loopback'),
  v4('169.254.0.0/16', 'link_local'),
  v4('172.16.0.0/12', 'private'),
  v4('192.0.0.0/24', 'reserved'),
  v4('192.0.2.0/24', 'documentation'),
  v4('192.88.99.0/24', 'reserved'),
  v4('192.168.0.0/16', 'private'),
  v4('198.18.0.0/15', 'reserved'),
  v4('198.51.100.0/24', 'documentation'),
  v4('203.0.113.0/24', 'documentation'),
  v4('224.0.0.0/4', 'multicast'),
  v4('240.0.0.0/4', 'reserved'),
];

const V6_RANGES: Range[] = [
  v6('fd00:ec2::254/128', 'metadata'),
  v6('::/128', 'unspecified'),
  v6('::1/128', 'loopback'),
  v6('100::/64', 'reserved'),
  v6('2001:db8::/32', 'documentation'),
  v6('2001::/23', 'reserved'),
  v6('fc00::/7', 'unique_local'),
  v6('fe80::/10', 'link_local'),
  v6('fec0::/10', 'private'),
  v6('ff00::/8', 'multicast'),
];

function inRange(bytes: number[], range: Range): boolean {
  let bits = range.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((bytes[i]! & mask) !== (range.bytes[i]! & mask)) return false;
  }
  return true;
}

/** 16 bytes of an IPv6 address (with `::` and a trailing dotted quad), or undefined. */
export function parseIPv6(input: string): number[] | undefined {
  let text = input.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  if (isIP(text) !== 6) return undefined;
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad) {
    const b = quad[1]!.split('.').map(Number);
    text = text.slice(0, -quad[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array(8 - headParts.length - tailParts.length).fill('0');
  const groups = [...headParts, ...fill, ...tailParts].map((g) => parseInt(g, 16));
  if (groups.length !== 8) return undefined;
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

/** What kind of address this is; `public` is the only kind outbound requests may reach by default. */
export function classifyAddress(address: string): AddressClass {
  const text = address.replace(/^\[|\]$/g, '');
  const family = isIP(text);
  if (family === 4) {
    const bytes = text.split('.').map(Number);
    return V4_RANGES.find((r) => inRange(bytes, r))?.cls ?? 'public';
  }
  if (family !== 6) return 'reserved';
  const bytes = parseIPv6(text)!;
  const embedded = embeddedIPv4(bytes);
  if (embedded) return classifyAddress(embedded);
  return V6_RANGES.find((r) => inRange(bytes, r))?.cls ?? 'public';
}

/** IPv4 carried inside IPv6 (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16). */
function embeddedIPv4(bytes: number[]): string | undefined {
  const zeros = (from: number, to: number) => bytes.slice(from, to).every((b) => b === 0);
  const quad = (at: number) => bytes.slice(at, at + 4).join('.');
  if (zeros(0, 10) && bytes[10] === 0xff && bytes[11] === 0xff) return quad(12);
  // ::a.b.c.d (deprecated "compatible"), but not :: or ::1 themselves.
  if (zeros(0, 12) && !zeros(12, 15)) return quad(12);
  if (bytes[0] === 0x00 && bytes[1] === 0x64 && bytes[2] === 0xff && bytes[3] === 0x9b && zeros(4, 12)) return quad(12);
  if (bytes[0] === 0x20 && bytes[1] === 0x02) return quad(2);
  return undefined;
}

export const isPublicAddress = (address: string): boolean => classifyAddress(address) === 'public';

export interface GuardOptions {
  /** Let private, loopback, … addresses through (FANGATE_ALLOW_PRIVATE_WEBHOOKS=true; tests). */
  allowPrivate: boolean;
  resolver?: Resolver;
}

/**
 * Resolves `host` (a name or an IP literal, IPv6 with or without brackets) and answers the address to
 * connect to. Refuses when any address is not public, so a name with one public and one private
 * address cannot be used to reach the private one.
 */
export async function resolveAllowedAddress(host: string, options: GuardOptions): Promise<ResolvedAddress> {
  const bare = host.replace(/^\[|\]$/g, '');
  const literal = isIP(bare);
  let addresses: ResolvedAddress[];
  if (literal) addresses = [{ address: bare, family: literal === 6 ? 6 : 4 }];
  else {
    try {
      addresses = await (options.resolver ?? systemResolver)(bare);
    } catch {
      throw new AddressRefusedError(bare, undefined, 'unresolvable');
    }
    if (addresses.length === 0) throw new AddressRefusedError(bare, undefined, 'unresolvable');
  }
  if (!options.allowPrivate) {
    for (const a of addresses) {
      const cls = classifyAddress(a.address);
      if (cls !== 'public') throw new AddressRefusedError(bare, a.address, cls);
    }
  }
  return addresses[0]!;
}

/**
 * A `lookup` for net/tls connect options (undici `connect.lookup`) that answers only the checked
 * address, whatever the name: the socket goes where the guard looked.
 */
export function pinnedLookup(pinned: ResolvedAddress) {
  return (_host: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options?.all) callback(null, [{ address: pinned.address, family: pinned.family }]);
    else callback(null, pinned.address, pinned.family);
  };
}
