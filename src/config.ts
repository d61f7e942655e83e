import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { type Static, type TSchema, Type } from 'typebox';
import { Value } from 'typebox/value';
import { parseProxyPool, type ProxySpec } from './net/proxy-config.js';

const FLAG_VALUES = ['1', '0', 'true', 'false', 'on', 'off', 'yes', 'no'];
const TRUE_VALUES = new Set(['1', 'true', 'on', 'yes']);

const int = (minimum: number, maximum: number, fallback: number, description: string) =>
  Type.Integer({ minimum, maximum, default: fallback, description });
const flag = (fallback: boolean, description: string) =>
  Type.String({ enum: FLAG_VALUES, default: String(fallback), description });
const text = (description: string, options: { pattern?: string; minLength?: number } = {}) =>
  Type.Optional(Type.String({ ...options, description }));
const choice = <T extends string>(values: readonly T[], fallback: T, description: string) =>
  Type.Unsafe<T>({ type: 'string', enum: [...values], default: fallback, description });
const HTTP_URL = '^https?://[^\\s]+$';

/**
 * Every environment variable FanGate reads, in one schema: TypeBox applies the defaults, converts the
 * numbers and reports every bad value at once; `loadConfig` only shapes the result.
 */
export const EnvSchema = Type.Object({
  FANGATE_PORT: int(0, 65535, 8080, 'Port of the API.'),
  FANGATE_HOST: Type.String({ default: '0.0.0.0', description: 'Address the API listens on.' }),
  FANGATE_PUBLIC_URL: text('Base URL clients reach FanGate at (polling_url, Link URLs); default http://localhost:<port>.', { pattern: HTTP_URL }),
  FANGATE_DATA_DIR: Type.String({ default: './data', description: 'Embedded database, key file and local admin token.' }),
  DATABASE_URL: text('PostgreSQL URL; unset runs the embedded database.', { pattern: '^postgres(ql)?://' }),
  FANGATE_MASTER_KEY: text('Vault keyring kid:base64key[,kid:base64key…]; the first one encrypts.'),
  FANGATE_BOOTSTRAP_API_KEY: text('Make sure organisation default has this API key.', { pattern: '^fg_[A-Za-z0-9_]{16,}$' }),
  FANGATE_ADMIN_TOKEN: text('Enables the admin API.', { minLength: 16 }),
  FANGATE_ROLE: choice(['all', 'api', 'worker'] as const, 'all', 'What this process runs.'),
  FANGATE_SANDBOX: choice(['on', 'off'] as const, 'on', 'Run the embedded sandbox platform.'),
  FANGATE_SANDBOX_PORT: int(0, 65535, 8081, 'Port of the embedded sandbox.'),
  FANGATE_PROXY_POOL: text('Outbound proxy pool, country=url[,country=url…].'),
  FANGATE_ALLOW_PRIVATE_WEBHOOKS: flag(false, 'Allow webhook endpoints on private or loopback addresses.'),
  FANGATE_ALLOW_PRIVATE_PROXIES: flag(false, 'Allow customProxy hosts on private or loopback addresses.'),
  FANGATE_WEBHOOK_CONCURRENCY: int(1, 10_000, 32, 'Webhook deliveries in flight per worker.'),
  FANGATE_LOG_LEVEL: choice(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info', 'Log level.'),
  FANGATE_RATE_LIMIT_PER_MIN: int(1, 1_000_000, 1000, 'Requests per API key per minute.'),
  FANGATE_CONNECT_RATE_LIMIT_PER_HOUR: int(1, 1_000_000, 60, 'Connects per organisation per hour.'),
  FANGATE_ACCOUNT_LOGINS_PER_HOUR: int(1, 1_000_000, 5, 'Upstream logins per account per hour.'),
  FANGATE_AUTH_FAILURE_LIMIT_PER_MIN: int(1, 1_000_000, 30, 'Failed API-key attempts per client address per minute.'),
  FANGATE_TRUST_PROXY: text('Proxies whose X-Forwarded-For is believed: a hop count or IPs/CIDRs.'),
  FANGATE_ACCESS_RATE_PER_MIN: int(1, 1_000_000, 60, 'Access API requests per account per minute.'),
  FANGATE_ACCESS_BURST: int(1, 1_000_000, 90, 'Access API burst per account.'),
  FANGATE_ONLYFANS_URL: text('Base URL of the OnlyFans-style platform (the sandbox unless set).', { pattern: HTTP_URL }),
  FANGATE_FANSLY_URL: text('Base URL of the Fansly-style platform (the sandbox unless set).', { pattern: HTTP_URL }),
  FANGATE_DB_POOL_SIZE: int(1, 1000, 10, 'PostgreSQL connections per process.'),
  FANGATE_DB_PREPARED_STATEMENTS: flag(true, 'PostgreSQL: run repeated statements as prepared statements (off behind a pooler in transaction mode that does not keep them).'),
  FANGATE_HTTP_IDLE_TIMEOUT_SEC: int(5, 86_400, 120, 'Seconds a connection may go without a byte moving either way before it is closed.'),
  FANGATE_EMBEDDED_VACUUM_INTERVAL_SEC: int(1, 86_400, 600, 'Embedded mode: seconds between VACUUM (ANALYZE) runs (PGlite has no autovacuum).'),
});
type Env = Static<typeof EnvSchema>;

/** How a variable's rule reads in an error, where the schema alone would say it in the validator's words. */
const RULES: Record<string, string> = {
  DATABASE_URL: 'must be a postgres:// or postgresql:// URL',
  FANGATE_BOOTSTRAP_API_KEY: 'must look like fg_<at least 16 letters, digits or _>',
  FANGATE_ADMIN_TOKEN: 'must be at least 16 characters',
};

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
  /** PostgreSQL: repeated statements run prepared (off behind a transaction-mode pooler without support for them). */
  dbPreparedStatements: boolean;
  /** A connection with no byte moving either way for this long is closed (a caller that stopped reading), ms. */
  httpIdleTimeoutMs: number;
  /** Embedded mode: how often the database is vacuumed and analysed (PGlite runs no autovacuum), ms. */
  embeddedVacuumIntervalMs: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = parseEnv(env);
  const problems: string[] = [];
  const port = parsed.FANGATE_PORT;
  const sandboxUrl = `http://127.0.0.1:${parsed.FANGATE_SANDBOX_PORT}`;
  const trimUrl = (url: string) => url.replace(/\/+$/, '');
  let proxyPoolEntries = new Map<string, ProxySpec[]>();
  try {
    proxyPoolEntries = parseProxyPool(parsed.FANGATE_PROXY_POOL ?? '');
  } catch (error) {
    problems.push(`FANGATE_PROXY_POOL: ${(error as Error).message}`);
  }
  const trustProxy = parseTrustProxy(parsed.FANGATE_TRUST_PROXY, problems);
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    port,
    host: parsed.FANGATE_HOST,
    publicUrl: trimUrl(parsed.FANGATE_PUBLIC_URL ?? `http://localhost:${port}`),
    dataDir: resolve(parsed.FANGATE_DATA_DIR),
    databaseUrl: parsed.DATABASE_URL,
    masterKey: parsed.FANGATE_MASTER_KEY,
    bootstrapApiKey: parsed.FANGATE_BOOTSTRAP_API_KEY,
    adminToken: parsed.FANGATE_ADMIN_TOKEN,
    role: parsed.FANGATE_ROLE,
    sandbox: { enabled: parsed.FANGATE_SANDBOX === 'on', port: parsed.FANGATE_SANDBOX_PORT },
    proxyPool: parsed.FANGATE_PROXY_POOL,
    allowPrivateWebhooks: TRUE_VALUES.has(parsed.FANGATE_ALLOW_PRIVATE_WEBHOOKS),
    allowPrivateProxies: TRUE_VALUES.has(parsed.FANGATE_ALLOW_PRIVATE_PROXIES),
    webhookConcurrency: parsed.FANGATE_WEBHOOK_CONCURRENCY,
    logLevel: parsed.FANGATE_LOG_LEVEL,
    rateLimit: {
      perKeyPerMinute: parsed.FANGATE_RATE_LIMIT_PER_MIN,
      connectPerHour: parsed.FANGATE_CONNECT_RATE_LIMIT_PER_HOUR,
      accountLoginsPerHour: parsed.FANGATE_ACCOUNT_LOGINS_PER_HOUR,
      authFailuresPerMinute: parsed.FANGATE_AUTH_FAILURE_LIMIT_PER_MIN,
    },
    trustProxy,
    access: { ratePerMin: parsed.FANGATE_ACCESS_RATE_PER_MIN, burst: parsed.FANGATE_ACCESS_BURST },
    platforms: {
      onlyfansUrl: trimUrl(parsed.FANGATE_ONLYFANS_URL ?? sandboxUrl),
      fanslyUrl: trimUrl(parsed.FANGATE_FANSLY_URL ?? sandboxUrl),
    },
    proxyPoolEntries,
    dbPoolSize: parsed.FANGATE_DB_POOL_SIZE,
    dbPreparedStatements: TRUE_VALUES.has(parsed.FANGATE_DB_PREPARED_STATEMENTS),
    httpIdleTimeoutMs: parsed.FANGATE_HTTP_IDLE_TIMEOUT_SEC * 1000,
    embeddedVacuumIntervalMs: parsed.FANGATE_EMBEDDED_VACUUM_INTERVAL_SEC * 1000,
  };
}

/** Validates the environment against `EnvSchema`; every bad variable is one line of the error. */
function parseEnv(env: NodeJS.ProcessEnv): Env {
  // Only FanGate's own variables, and an empty value means "not set", as in a shell's `VAR= cmd`.
  const data: Record<string, string> = {};
  for (const name of Object.keys(EnvSchema.properties)) {
    const value = env[name];
    if (value !== undefined && value !== '') data[name] = name.startsWith('FANGATE_ALLOW_') ? value.toLowerCase() : value;
  }
  // TypeBox's own value functions, not an Ajv instance: compiling one was ≈ 50 ms of every start.
  const parsed = Value.Convert(EnvSchema, Value.Default(EnvSchema, data));
  const problems = new Map<string, string>();
  for (const e of Value.Errors(EnvSchema, parsed)) {
    const name = e.instancePath.slice(1);
    if (!problems.has(name)) problems.set(name, `${name} ${describeRule(name, e.message)} (got "${env[name]}")`);
  }
  if (problems.size > 0) throw new ConfigError([...problems.values()]);
  return parsed as Env;
}

function describeRule(name: string, fallback = 'is invalid'): string {
  const schema = (EnvSchema.properties as Record<string, TSchema & { type?: string; enum?: string[]; minimum?: number; maximum?: number; pattern?: string }>)[name];
  if (!schema) return fallback;
  if (RULES[name]) return RULES[name];
  if (schema.enum === FLAG_VALUES) return 'must be true or false';
  if (schema.enum) return `must be one of ${schema.enum.join(', ')}`;
  if (schema.type === 'integer') return `must be an integer from ${schema.minimum} to ${schema.maximum}`;
  if (schema.pattern === HTTP_URL) return 'must be an http(s) URL';
  return fallback;
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
