import type { ProxyColumn } from '../db/schema.js';
import type { ProxyPool } from './proxy-pool.js';

/** `customProxy` as a request gives it. */
export interface CustomProxyBody {
  protocol?: 'http' | 'socks5';
  host: string;
  port: number;
  username?: string;
  password?: string;
}

/** Proxy choice of a request: the public part and the password (a vault secret). */
export interface ProxyInput {
  proxy: ProxyColumn;
  password: string | null;
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
    return { proxy: { type: 'country', country, proxy_id: picked.proxyId }, password: null };
  }
  if (body.customProxy !== undefined) {
    const p = body.customProxy;
    if (p.password !== undefined && p.username === undefined) errors.push({ field: 'customProxy.username', message: 'is required with a password' });
    return {
      proxy: { type: 'custom', protocol: p.protocol ?? 'http', host: p.host, port: p.port, ...(p.username === undefined ? {} : { username: p.username }) },
      password: p.password ?? null,
    };
  }
  return null;
}

