import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';

/** Small HTTP helpers shared by both platform sides. */

export function parseCookies(header: string | undefined): Record<string, string> {
  // No prototype: a cookie named "__proto__" or "constructor" is just a cookie.
  const cookies: Record<string, string> = Object.create(null);
  for (const pair of (header ?? '').split(';')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    try {
      cookies[name] = decodeURIComponent(value);
    } catch {
      cookies[name] = value;
    }
  }
  return cookies;
}

export function setCookie(name: string, value: string, maxAgeSec?: number): string {
  const maxAge = maxAgeSec === undefined ? '' : `; Max-Age=${maxAgeSec}`;
  return `${name}=${value}; Path=/; HttpOnly; SameSite=Lax${maxAge}`;
}

/** The caller's address as the platform sees it (the proxy's outgoing address when proxied). */
export function remoteAddress(request: FastifyRequest): string {
  const address = request.socket.remoteAddress ?? '';
  return address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
}

export function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.');
}

/** A header as one string (repeated headers count as absent). */
export function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' ? value : undefined;
}

// Decimal digits only: the query coercion would otherwise read `1.5` or `1e1` as integers.
export const PageQuery = Type.Object({
  limit: Type.Optional(Type.String({ pattern: '^(100|[1-9][0-9]?)$', description: '1–100' })),
  offset: Type.Optional(Type.String({ pattern: '^[0-9]{1,9}$', description: '0–999999999' })),
});

/** `?limit=` (1–100, default 10) and `?offset=` (default 0) of the list endpoints. */
export function pageOf(query: { limit?: string; offset?: string }): { limit: number; offset: number } {
  return { limit: query.limit === undefined ? 10 : Number(query.limit), offset: query.offset === undefined ? 0 : Number(query.offset) };
}

export const UserAgentHeader = Type.Object({ 'user-agent': Type.String({ minLength: 1 }) });
