import { Secret, TOTP } from 'otpauth';

/**
 * The sandbox's pinned identities (DESIGN.md section 7). Tests across FanGate import these instead of
 * repeating the magic values.
 */
export const SANDBOX_EMAIL_DOMAIN = 'sandbox.test';
export const SANDBOX_PASSWORD = 'password';
export const SANDBOX_SMS_CODE = '123456';
export const SANDBOX_PHONE_LAST4 = '4242';
export const SANDBOX_TOTP_SECRET = 'JBSWY3DPEHPK3PXP';
export const SANDBOX_EMAIL_CODE = '654321';

/** Tags in the local part of an identity (`jane+sms+email`) that choose its behaviour. */
export const SANDBOX_TAGS = ['sms', 'app', 'email', 'face', 'locked', 'slow', 'flaky', 'expire', 'rotate'] as const;
export type SandboxTag = (typeof SANDBOX_TAGS)[number];

/** Platform-side numbers a driver meets; documented in docs/sandbox.md. */
export const SANDBOX_LIMITS = {
  /** `+expire` sessions die this long after login. */
  expireSessionMs: 30_000,
  /** `+slow` delays every upstream call by this much. */
  slowDelayMs: 2_000,
  /** A login attempt beyond this many within `loginWindowMs` locks the user for `lockMs`. */
  loginsPerWindow: 10,
  loginWindowMs: 60 * 60_000,
  lockMs: 60 * 60_000,
  /** Wrong codes one login may collect before the platform drops it (FanGate itself stops at 5). */
  wrongCodesPerLogin: 10,
  /** How long an unfinished login (its login token) stays usable. */
  loginTtlMs: 15 * 60_000,
  /** The OnlyFans-side `sess` cookie is replaced once it is this old… */
  sessRotateAfterMs: 15 * 60_000,
  /** …and the replaced value keeps working this long, so requests already in flight do not fail. */
  sessGraceMs: 60_000,
} as const;

const totp = new TOTP({
  secret: Secret.fromBase32(SANDBOX_TOTP_SECRET),
  algorithm: 'SHA1',
  digits: 6,
  period: 30,
});

/** The authenticator-app code of the sandbox secret at `timestamp` (ms). */
export function sandboxTotp(timestamp: number = Date.now()): string {
  return totp.generate({ timestamp });
}

/** True when `code` is the sandbox TOTP at `timestamp`, allowing one 30 s step of clock drift. */
export function isValidSandboxTotp(code: string, timestamp: number): boolean {
  return totp.validate({ token: code, timestamp, window: 1 }) !== null;
}

/** The tags of a local part, e.g. `jane+sms+email` → {sms, email}. Unknown tags are plain plus-addressing. */
export function parseTags(localPart: string): Set<SandboxTag> {
  const tags = new Set<SandboxTag>();
  for (const part of localPart.split('+').slice(1)) {
    if ((SANDBOX_TAGS as readonly string[]).includes(part)) tags.add(part as SandboxTag);
  }
  return tags;
}

/** `jane+sms@sandbox.test` → `j***@sandbox.test`, the way platforms show where a code went. */
export function maskEmail(email: string): string {
  const [local = '', domain = ''] = email.split('@');
  return `${local.slice(0, 1)}***@${domain}`;
}
