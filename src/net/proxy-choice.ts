import type { ProxyColumn } from '../db/schema.js';
import { AddressRefusedError, type GuardOptions, resolveAllowedAddress } from './address-guard.js';
import type { ProxyPool } from './proxy-pool.js';

/** `customProxy` as a request gives it. */
export interface CustomProxyBody {
  protocol?: 'http' | 'socks5';
  host: string;
  port: number;
  username?: string;
  password?: string;
}

/** Proxy choice of a request: the public part, and the username and password (vault secrets, never in `proxy`). */
export interface ProxyInput {
  proxy: ProxyColumn;
  password: string | null;
  username: string | null;
}

type FieldError = { field: string; message: string };

/** proxyCountry / customProxy → the account's proxy; errors are collected, not thrown. */
export function parseProxyChoice(body: { proxyCountry?: string; customProxy?: CustomProxyBody }, pool: ProxyPool, errors: FieldError[]): ProxyInput | null {
  if (body.proxyCountry !== undefined && body.customProxy !== undefined) {
    errors.push({ field: 'proxyCountry', message: 'cannot be combined with customProxy: choose one' });
    return null;
  }
  if (body.proxyCountry !== undefined) {
    const country = body.proxyCountry.toLowerCase();
    const picked = pool.has(country) ? pool.pick(country) : null;
    if (!picked) {
      const known = pool.countries();
      errors.push({
        field: 'proxyCountry',
        message: known.length > 0 ? `has no proxies; available countries: ${known.join(', ')}` : 'is not available: the operator configured no proxy pool (FANGATE_PROXY_POOL)',
      });
      return null;
    }
    return { proxy: { type: 'country', country, proxy_id: picked.proxyId }, password: null, username: null };
  }
  if (body.customProxy !== undefined) {
    const p = body.customProxy;
    if (p.password !== undefined && p.username === undefined) errors.push({ field: 'customProxy.username', message: 'is required with a password' });
    return {
      proxy: { type: 'custom', protocol: p.protocol ?? 'http', host: p.host, port: p.port },
      password: p.password ?? null,
      username: p.username ?? null,
    };
  }
  return null;
}


/**
 * `customProxy.host` may not lead to a private, loopback, link-local or metadata address (DESIGN 8): the
 * API user would otherwise reach FanGate's own network through it. Checked when the proxy is given, and
 * again at each connect (the platform gateway), unless FANGATE_ALLOW_PRIVATE_PROXIES=true.
 */
export async function customProxyErrors(proxy: ProxyInput | null | undefined, guard: GuardOptions): Promise<FieldError[]> {
  if (proxy?.proxy.type !== 'custom' || guard.allowPrivate) return [];
  try {
    await resolveAllowedAddress(proxy.proxy.host!, guard);
    return [];
  } catch (error) {
    if (!(error instanceof AddressRefusedError)) throw error;
    return [
      {
        field: 'customProxy.host',
        message:
          error.addressClass === 'unresolvable'
            ? 'customProxy.host could not be resolved'
            : 'customProxy.host must be a public address: it resolves to a private, loopback, link-local or metadata address (FANGATE_ALLOW_PRIVATE_PROXIES allows them)',
      },
    ];
  }
}
