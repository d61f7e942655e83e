import type { ProxyColumn } from '../db/schema.js';
import { validationError } from '../lib/errors.js';
import type { ProxyPool } from '../net/proxy-pool.js';
import { parseCookieString } from '../platforms/http.js';
import type { PlatformSession } from '../platforms/types.js';
import type { AuthType, Platform } from './state-machine.js';

/** A start or credentials-update body as it arrives (types already checked by the route schema). */
export interface StartBody {
  auth_type?: AuthType;
  name?: string;
  email?: string;
  username?: string;
  password?: string;
  auth_id?: string;
  cookies?: string;
  xbc?: string;
  user_agent?: string;
  proxyCountry?: string;
  customProxy?: CustomProxyBody;
  force_connect?: boolean;
  remember_credentials?: boolean;
  totp_secret?: string;
  client_reference_id?: string;
}

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

/** What an attempt needs to run, normalised; the secrets are encrypted as `input_enc`. */
export interface StartInput {
  authType: AuthType;
  name: string | null;
  login: string | null;
  password: string | null;
  session: PlatformSession | null;
  proxy: ProxyInput | null;
  forceConnect: boolean;
  rememberCredentials: boolean;
  totpSecret: string | null;
  clientReferenceId: string | null;
}

type FieldError = { field: string; message: string };

/** The session cookies every OnlyFans-style session needs; errors name the field given. */
export function checkSessionCookies(cookies: string, field: string, authId?: { value: string | undefined; field: string }): FieldError[] {
  const errors: FieldError[] = [];
  const jar = parseCookieString(cookies);
  const missing = ['auth_id', 'sess', 'fp'].filter((name) => !jar.get(name));
  if (missing.length > 0) errors.push({ field, message: `must contain the cookies auth_id, sess and fp (missing: ${missing.join(', ')})` });
  if (authId?.value !== undefined && jar.get('auth_id') && jar.get('auth_id') !== authId.value) {
    errors.push({ field: authId.field, message: "does not match the auth_id cookie" });
  }
  return errors;
}

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

/** Checks the combinations the schema cannot express and normalises the body. Throws a 422 naming every bad field. */
export function parseStartInput(platform: Platform, body: StartBody, pool: ProxyPool): StartInput {
  const errors: FieldError[] = [];
  const authType = body.auth_type ?? 'email_password';
  const require = (field: keyof StartBody) => {
    if (body[field] === undefined || body[field] === '') errors.push({ field, message: `is required for auth_type ${authType}` });
  };
  const forbid = (fields: (keyof StartBody)[]) => {
    for (const field of fields) if (body[field] !== undefined) errors.push({ field, message: `is not used with auth_type ${authType}` });
  };

  let session: PlatformSession | null = null;
  let login: string | null = null;
  if (platform === 'fansly' && authType !== 'email_password') {
    errors.push({ field: 'auth_type', message: 'Fansly accounts connect with email_password (email or username + password)' });
  } else if (authType === 'email_password') {
    forbid(['auth_id', 'cookies', 'xbc', 'user_agent']);
    if (platform === 'fansly') {
      if (body.email === undefined && body.username === undefined) errors.push({ field: 'email', message: 'or username is required' });
      if (body.email !== undefined && body.username !== undefined) errors.push({ field: 'username', message: 'cannot be combined with email: send one' });
      login = body.email ?? body.username ?? null;
    } else {
      require('email');
      forbid(['username']);
      login = body.email ?? null;
    }
    require('password');
  } else if (authType === 'raw_data') {
    forbid(['email', 'username', 'password']);
    for (const field of ['auth_id', 'cookies', 'xbc', 'user_agent'] as const) require(field);
    if (body.cookies) errors.push(...checkSessionCookies(body.cookies, 'cookies', { value: body.auth_id, field: 'auth_id' }));
    if (body.auth_id && body.cookies && body.xbc && body.user_agent) {
      session = { authId: body.auth_id, cookies: body.cookies, xbc: body.xbc, userAgent: body.user_agent };
    }
  } else {
    forbid(['email', 'username', 'password', 'auth_id', 'cookies', 'xbc', 'user_agent']);
  }
  if (body.totp_secret !== undefined && authType !== 'email_password') {
    errors.push({ field: 'totp_secret', message: 'is only used with auth_type email_password' });
  }
  const proxy = parseProxyChoice(body, pool, errors);
  if (errors.length > 0) throw validationError(errors);

  return {
    authType,
    name: body.name ?? null,
    login,
    password: body.password ?? null,
    session,
    proxy,
    forceConnect: body.force_connect ?? false,
    rememberCredentials: body.remember_credentials ?? true,
    totpSecret: body.totp_secret ? body.totp_secret.replace(/[\s-]/g, '').toUpperCase() : null,
    clientReferenceId: body.client_reference_id ?? null,
  };
}
