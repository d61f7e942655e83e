import { createHash } from 'node:crypto';

/** One outbound proxy: a customer's `customProxy` or an entry of the operator's country pool. */
export interface ProxySpec {
  protocol: 'http' | 'socks5';
  host: string;
  port: number;
  username?: string;
  password?: string;
  /** The host as the user gave it, when `host` is the address the SSRF guard checked and pinned. */
  originalHost?: string;
}

export const PROXY_PROTOCOLS: readonly ProxySpec['protocol'][] = ['http', 'socks5'];

/**
 * Stable, non-secret identifier of a proxy (protocol + host + port + username, never the password).
 * Stored on the account so it keeps the same exit (sticky), and safe to log.
 */
export function proxyId(proxy: ProxySpec): string {
  const identity = [proxy.protocol, proxy.host.toLowerCase(), proxy.port, proxy.username ?? ''].join('\n');
  return `px_${createHash('sha256').update(identity).digest('hex').slice(0, 16)}`;
}

/** `protocol://host:port` for logs and error messages: never the username or password (both secrets). */
export function describeProxy(proxy: ProxySpec): string {
  return `${proxy.protocol}://${formatHostPort(proxy.host, proxy.port)}`;
}

export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Parses one proxy URL, `http://[user[:password]@]host:port` or `socks5://…`.
 * The port is required (a silent default would hide typos); user and password are percent-decoded.
 * Throws an Error naming the problem; the password is never part of the message.
 */
export function parseProxyUrl(url: string): ProxySpec {
  const text = url.trim();
  // Annotated so that TypeScript knows a call to it ends the function (narrowing below).
  const fail: (problem: string) => never = (problem) => {
    throw new Error(`invalid proxy "${redactProxyUrl(text)}": ${problem}`);
  };

  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text);
  if (!scheme) fail('expected protocol://host:port');
  const protocol = scheme[1]!.toLowerCase();
  if (!isProxyProtocol(protocol)) fail(`protocol must be one of ${PROXY_PROTOCOLS.join(', ')}`);

  const rest = text.slice(scheme[0].length).replace(/\/$/, '');
  if (/[/?#]/.test(rest)) fail('a proxy URL takes no path, query or fragment');
  // The userinfo ends at the last '@': an unencoded '@' in a password stays part of the password.
  const at = rest.lastIndexOf('@');
  const userinfo = at === -1 ? undefined : rest.slice(0, at);
  const hostPort = rest.slice(at + 1);

  const address = /^(?:\[([0-9a-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/i.exec(hostPort);
  if (!address) fail('expected host:port');
  const host = (address[1] ?? address[2])!;
  const port = Number(address[3]);
  if (port < 1 || port > 65535) fail('port must be from 1 to 65535');

  const spec: ProxySpec = { protocol, host, port };
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    const username = decode(colon === -1 ? userinfo : userinfo.slice(0, colon), fail);
    if (username === '') fail('empty username');
    spec.username = username;
    if (colon !== -1) spec.password = decode(userinfo.slice(colon + 1), fail);
  }
  return spec;
}

/**
 * Parses `FANGATE_PROXY_POOL`: `us=http://u:p@10.0.0.1:3128,socks5://h:1080;uk=http://…`.
 * Country codes are two letters, normalised to lowercase (`uk` is accepted as written; it is what the
 * API takes). An empty or blank spec is an empty pool. Throws an Error naming the bad entry.
 */
export function parseProxyPool(spec: string): Map<string, ProxySpec[]> {
  const pool = new Map<string, ProxySpec[]>();
  const entries = spec.split(';').map((entry) => entry.trim()).filter((entry) => entry !== '');

  for (const entry of entries) {
    const fail: (problem: string) => never = (problem) => {
      throw new Error(`FANGATE_PROXY_POOL: bad entry "${redactPoolEntry(entry)}": ${problem}`);
    };
    const eq = entry.indexOf('=');
    if (eq === -1) fail('expected country=proxy_url[,proxy_url…]');
    const country = entry.slice(0, eq).trim().toLowerCase();
    if (!/^[a-z]{2}$/.test(country)) fail('country must be a two-letter code such as us or uk');
    if (pool.has(country)) fail(`country "${country}" is listed twice`);

    const urls = entry.slice(eq + 1).split(',').map((url) => url.trim()).filter((url) => url !== '');
    if (urls.length === 0) fail(`no proxy listed for "${country}"`);
    const proxies: ProxySpec[] = [];
    const seen = new Set<string>();
    for (const url of urls) {
      let proxy: ProxySpec;
      try {
        proxy = parseProxyUrl(url);
      } catch (err) {
        return fail((err as Error).message);
      }
      const id = proxyId(proxy);
      if (seen.has(id)) fail(`proxy ${describeProxy(proxy)} is listed twice`);
      seen.add(id);
      proxies.push(proxy);
    }
    pool.set(country, proxies);
  }
  return pool;
}

function isProxyProtocol(value: string): value is ProxySpec['protocol'] {
  return (PROXY_PROTOCOLS as readonly string[]).includes(value);
}

function decode(value: string, fail: (problem: string) => never): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return fail('bad percent-encoding in user or password');
  }
}

/** Replaces the password of a (possibly malformed) proxy URL with `***` so it can appear in errors. */
function redactProxyUrl(url: string): string {
  const at = url.lastIndexOf('@');
  if (at === -1) return url;
  const schemeEnd = url.indexOf('://');
  const userStart = schemeEnd === -1 || schemeEnd > at ? 0 : schemeEnd + 3;
  // The username is a secret like the password: neither is shown.
  return `${url.slice(0, userStart)}***${url.slice(at)}`;
}

function redactPoolEntry(entry: string): string {
  const eq = entry.indexOf('=');
  const head = eq === -1 ? '' : entry.slice(0, eq + 1);
  const body = eq === -1 ? entry : entry.slice(eq + 1);
  return head + body.split(',').map(redactProxyUrl).join(',');
}
