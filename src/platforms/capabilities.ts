import { parseCookieString } from './http.js';
import type { AuthType, PlatformName } from './types.js';

/**
 * What differs between platforms, as data: everything outside `platforms/` asks these instead of
 * testing the platform's name. A new platform adds an entry here and a driver.
 */
export interface PlatformCapabilities {
  /** For people: route tags, messages. */
  displayName: string;
  /** Where its connect routes live under /api (the attempt's polling_url). */
  connectPath: string;
  /** Connect methods it supports, the default first. */
  authTypes: readonly AuthType[];
  /** email_password logins accept a `username` instead of the `email`. */
  loginByUsername: boolean;
  /** The platform sends the email device-check code itself at login (no send-email-to-creator step). */
  emailCodeSentAtLogin: boolean;
  /** Copied browser sessions can be imported (`POST /api/accounts/import`). */
  importable: boolean;
  /** Cookies a copied browser session must hold; the first one is the platform user id. Empty: none. */
  sessionCookies: readonly string[];
  /** The seed service's 400 `already_authenticated` text for this platform. */
  alreadyAuthenticatedMessage: string;
  /** Attempts carry the seed's extra fields (`status`, `needs_code`, `twofa_type`, `masked_email`). */
  seedAttemptFields: boolean;
  /** Root of the platform's API: Access API paths are relative to it (DESIGN 10). */
  apiRoot: string;
}

export const PLATFORMS: Record<PlatformName, PlatformCapabilities> = {
  onlyfans: {
    displayName: 'OnlyFans',
    connectPath: '/authenticate',
    authTypes: ['email_password', 'raw_data', 'mobile_app'],
    loginByUsername: false,
    emailCodeSentAtLogin: false,
    importable: true,
    sessionCookies: ['auth_id', 'sess', 'fp'],
    alreadyAuthenticatedMessage: 'Account is already successfully authenticated',
    seedAttemptFields: false,
    apiRoot: '/api2/v2',
  },
  fansly: {
    displayName: 'Fansly',
    connectPath: '/fansly/authenticate',
    authTypes: ['email_password'],
    loginByUsername: true,
    emailCodeSentAtLogin: true,
    importable: false,
    sessionCookies: [],
    alreadyAuthenticatedMessage: "Can't re-authenticate account at this time.",
    seedAttemptFields: true,
    apiRoot: '/api/v1',
  },
};

export const PLATFORM_NAMES = Object.keys(PLATFORMS) as PlatformName[];

export const capabilitiesOf = (platform: PlatformName): PlatformCapabilities => PLATFORMS[platform];

/** The platform that imports copied sessions (the seed's `cookie` / `userAgent` / `xbc` import). */
export const IMPORT_PLATFORM: PlatformName = PLATFORM_NAMES.find((name) => PLATFORMS[name].importable)!;

type FieldError = { field: string; message: string };

/**
 * Checks a copied browser session's cookie string against what the platform needs; errors name
 * `field` (and `authId.field` when the separately given user id does not match the cookie).
 */
export function sessionCookieErrors(platform: PlatformName, cookies: string, field: string, authId?: { value: string | undefined; field: string }): FieldError[] {
  const required = PLATFORMS[platform].sessionCookies;
  if (required.length === 0) return [];
  const errors: FieldError[] = [];
  const jar = parseCookieString(cookies);
  const missing = required.filter((name) => !jar.get(name));
  if (missing.length > 0) {
    errors.push({ field, message: `must contain the cookies ${required.slice(0, -1).join(', ')} and ${required.at(-1)} (missing: ${missing.join(', ')})` });
  }
  const userCookie = required[0]!;
  if (authId?.value !== undefined && jar.get(userCookie) && jar.get(userCookie) !== authId.value) {
    errors.push({ field: authId.field, message: `does not match the ${userCookie} cookie` });
  }
  return errors;
}

/** The platform user id a copied session names (its first session cookie). */
export function sessionUserId(platform: PlatformName, cookies: string): string | undefined {
  const cookie = PLATFORMS[platform].sessionCookies[0];
  return cookie ? parseCookieString(cookies).get(cookie) : undefined;
}
