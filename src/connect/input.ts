import { type FieldError, validationError } from '../lib/errors.js';
import { type CustomProxyBody, parseProxyChoice, type ProxyInput } from '../net/proxy-choice.js';
import type { ProxyPool } from '../net/proxy-pool.js';
import { capabilitiesOf, sessionCookieErrors } from '../platforms/capabilities.js';
import type { AuthType, PlatformName, PlatformSession } from '../platforms/types.js';

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

/** Checks the combinations the schema cannot express and normalises the body. Throws a 422 naming every bad field. */
export function parseStartInput(platform: PlatformName, body: StartBody, pool: ProxyPool): StartInput {
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
  const capabilities = capabilitiesOf(platform);
  if (!capabilities.authTypes.includes(authType)) {
    errors.push({ field: 'auth_type', message: `${capabilities.displayName} accounts connect with ${capabilities.authTypes.join(', ')}` });
  } else if (authType === 'email_password') {
    forbid(['auth_id', 'cookies', 'xbc', 'user_agent']);
    if (capabilities.loginByUsername) {
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
    if (body.cookies) errors.push(...sessionCookieErrors(platform, body.cookies, 'cookies', { value: body.auth_id, field: 'auth_id' }));
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
