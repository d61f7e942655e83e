import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { parseProxyPool, type ProxySpec } from './net/proxy-config.js';

/** Everything FanGate reads from its environment, parsed and checked once at start. */
export interface Config {
  port: number;
  host: string;
  publicUrl: string;
  dataDir: string;
  databaseUrl: string | undefined;
  masterKey: string | undefined;
  bootstrapApiKey: string | undefined;
  adminToken: string | undefined;
  role: 'all' | 'api' | 'worker';
  sandbox: { enabled: boolean; port: number };
  proxyPool: string | undefined;
  allowPrivateWebhooks: boolean;
  /** `customProxy` hosts may resolve to private, loopback, link-local or metadata addresses. */
  allowPrivateProxies: boolean;
  /** Webhook deliveries in flight per worker (FANGATE_WEBHOOK_CONCURRENCY). */
  webhookConcurrency: number;
  logLevel: string;
  rateLimit: { perKeyPerMinute: number; connectPerHour: number; accountLoginsPerHour: number; authFailuresPerMinute: number };
  /**
   * Proxies whose X-Forwarded-For is believed (FANGATE_TRUST_PROXY): a hop count, or addresses and
   * CIDRs; false (the default) uses the socket's address, so a client cannot choose its own IP.
   */
  trustProxy: false | number | string[];
  /** Access API token bucket per account (DESIGN 10). */
  access: { ratePerMin: number; burst: number };
  /** Base URLs of the platforms' APIs (the sandbox unless overridden). */
  platforms: { onlyfansUrl: string; fanslyUrl: string };
  proxyPoolEntries: Map<string, ProxySpec[]>;
  dbPoolSize: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];

  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name} must be an integer from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return value;
  };
  const bool = (name: string, fallback: boolean): boolean => {
    const raw = env[name]?.toLowerCase();
    if (raw === undefined || raw === '') return fallback;
    if (['1', 'true', 'on', 'yes'].includes(raw)) return true;
    if (['0', 'false', 'off', 'no'].includes(raw)) return false;
    problems.push(`${name} must be true or false (got "${env[name]}")`);
    return fallback;
  };
  const oneOf = <T extends string>(name: string, fallback: T, allowed: readonly T[]): T => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    if ((allowed as readonly string[]).includes(raw)) return raw as T;
    problems.push(`${name} must be one of ${allowed.join(', ')} (got "${raw}")`);
    return fallback;
  };
  const text = (name: string): string | undefined => (env[name] === '' ? undefined : env[name]);

  const port = int('FANGATE_PORT', 8080, 0, 65535);
  const databaseUrl = text('DATABASE_URL');
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push('DATABASE_URL must be a postgres:// or postgresql:// URL');
  }
  const bootstrapApiKey = text('FANGATE_BOOTSTRAP_API_KEY');
  if (bootstrapApiKey && !/^fg_[A-Za-z0-9_]{16,}$/.test(bootstrapApiKey)) {
    problems.push('FANGATE_BOOTSTRAP_API_KEY must look like fg_<at least 16 letters, digits or _>');
  }
  const adminToken = text('FANGATE_ADMIN_TOKEN');
  if (adminToken && adminToken.length < 16) problems.push('FANGATE_ADMIN_TOKEN must be at least 16 characters');
  const publicUrl = (text('FANGATE_PUBLIC_URL') ?? `http://localhost:${port}`).replace(/\/+$/, '');
  if (!/^https?:\/\//.test(publicUrl)) problems.push('FANGATE_PUBLIC_URL must be an http(s) URL');
  const sandboxEnabled = oneOf('FANGATE_SANDBOX', 'on', ['on', 'off']) === 'on';
  const sandboxPort = int('FANGATE_SANDBOX_PORT', 8081, 0, 65535);
  const sandboxUrl = `http://127.0.0.1:${sandboxPort}`;
  const url = (name: string, fallback: string): string => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    if (!/^https?:\/\/[^\s]+$/.test(raw)) problems.push(`${name} must be an http(s) URL`);
    return raw.replace(/\/+$/, '');
  };
  let proxyPoolEntries = new Map<string, ProxySpec[]>();
  try {
    proxyPoolEntries = parseProxyPool(text('FANGATE_PROXY_POOL') ?? '');
  } catch (error) {
    problems.push(`FANGATE_PROXY_POOL: ${(error as Error).message}`);
  }

  const trustProxy = parseTrustProxy(text('FANGATE_TRUST_PROXY'), problems);

  const config: Config = {
    port,
    host: text('FANGATE_HOST') ?? '0.0.0.0',
    publicUrl,
    dataDir: resolve(text('FANGATE_DATA_DIR') ?? './data'),
    databaseUrl,
    masterKey: text('FANGATE_MASTER_KEY'),
    bootstrapApiKey,
    adminToken,
    role: oneOf('FANGATE_ROLE', 'all', ['all', 'api', 'worker'] as const),
    sandbox: { enabled: sandboxEnabled, port: sandboxPort },
    proxyPool: text('FANGATE_PROXY_POOL'),
    allowPrivateWebhooks: bool('FANGATE_ALLOW_PRIVATE_WEBHOOKS', false),
    allowPrivateProxies: bool('FANGATE_ALLOW_PRIVATE_PROXIES', false),
    webhookConcurrency: int('FANGATE_WEBHOOK_CONCURRENCY', 32, 1, 10_000),
    logLevel: oneOf('FANGATE_LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    rateLimit: {
      perKeyPerMinute: int('FANGATE_RATE_LIMIT_PER_MIN', 1000, 1, 1_000_000),
      connectPerHour: int('FANGATE_CONNECT_RATE_LIMIT_PER_HOUR', 60, 1, 1_000_000),
      accountLoginsPerHour: int('FANGATE_ACCOUNT_LOGINS_PER_HOUR', 5, 1, 1_000_000),
      authFailuresPerMinute: int('FANGATE_AUTH_FAILURE_LIMIT_PER_MIN', 30, 1, 1_000_000),
    },
    trustProxy,
    access: { ratePerMin: int('FANGATE_ACCESS_RATE_PER_MIN', 60, 1, 1_000_000), burst: int('FANGATE_ACCESS_BURST', 90, 1, 1_000_000) },
    platforms: { onlyfansUrl: url('FANGATE_ONLYFANS_URL', sandboxUrl), fanslyUrl: url('FANGATE_FANSLY_URL', sandboxUrl) },
    proxyPoolEntries,
    dbPoolSize: int('FANGATE_DB_POOL_SIZE', 10, 1, 1000),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

const PROXY_ADDR_KEYWORDS = ['loopback', 'linklocal', 'uniquelocal'];

/** `none`/empty → false; `2` → two hops; `10.0.0.0/8, 127.0.0.1, loopback` → those addresses. */
export function parseTrustProxy(raw: string | undefined, problems: string[]): false | number | string[] {
  const value = raw?.trim().toLowerCase();
  if (!value || value === 'none' || value === 'false' || value === '0') return false;
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    if (hops > 100) problems.push(`FANGATE_TRUST_PROXY must be a hop count up to 100 or a list of IPs/CIDRs (got "${raw}")`);
    return hops;
  }
  const entries = value.split(',').map((e) => e.trim()).filter(Boolean);
  for (const entry of entries) {
    if (PROXY_ADDR_KEYWORDS.includes(entry)) continue;
    const [address, bits, extra] = entry.split('/');
    const family = isIP(address ?? '');
    const maxBits = family === 6 ? 128 : 32;
    const bitsOk = bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= maxBits);
    if (family === 0 || !bitsOk || extra !== undefined) {
      problems.push(`FANGATE_TRUST_PROXY: "${entry}" is not an IP address or CIDR (use a hop count, or addresses/CIDRs separated by commas)`);
    }
  }
  return entries;
}
