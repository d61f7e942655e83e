import { randomBytes } from 'node:crypto';
import { SANDBOX_LIMITS } from './identities.js';
import type { SandboxUser } from './users.js';

export type SessionEnd = 'logout' | 'revoked' | 'expired';

export interface Session {
  user: SandboxUser;
  /** The user agent the session was created with; every request must carry it. */
  userAgent: string;
  /** OnlyFans: the `x-bc` value; Fansly: the login `deviceId`. */
  device: string;
  /** OnlyFans `fp` cookie (empty on Fansly). */
  fp: string;
  /** The current secret (`sess` cookie or Fansly token). */
  secret: string;
  secretIssuedAt: number;
  expiresAt: number | null;
  ended: SessionEnd | null;
}

export function randomToken(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}

export function randomHex(bytes = 16): string {
  return randomBytes(bytes).toString('hex');
}

/**
 * Sessions of both platforms keyed by secret. Ended sessions stay as tombstones so a request with a
 * dead secret is still attributed to its user (request log, `+flaky`) and answered precisely.
 */
export class SessionStore {
  /** secret → session and the time until which that secret works (Infinity for the current one). */
  private readonly bySecret = new Map<string, { session: Session; validUntil: number }>();

  constructor(private readonly now: () => number) {}

  create(user: SandboxUser, init: { userAgent: string; device: string; fp: string }): Session {
    const at = this.now();
    const session: Session = {
      user,
      userAgent: init.userAgent,
      device: init.device,
      fp: init.fp,
      secret: user.platform === 'onlyfans' ? randomHex() : randomToken(36),
      secretIssuedAt: at,
      expiresAt: user.tags.has('expire') ? at + SANDBOX_LIMITS.expireSessionMs : null,
      ended: null,
    };
    this.bySecret.set(session.secret, { session, validUntil: Infinity });
    return session;
  }

  /** The session a secret belongs to, and whether that secret still works (a rotated one expires). */
  find(secret: string): { session: Session; current: boolean } | undefined {
    const entry = this.bySecret.get(secret);
    if (!entry) return undefined;
    return { session: entry.session, current: entry.validUntil > this.now() };
  }

  /** Issues a new secret; the previous one keeps working for the grace period. */
  rotate(session: Session): string {
    const previous = this.bySecret.get(session.secret);
    if (previous) previous.validUntil = this.now() + SANDBOX_LIMITS.sessGraceMs;
    session.secret = randomHex();
    session.secretIssuedAt = this.now();
    this.bySecret.set(session.secret, { session, validUntil: Infinity });
    return session.secret;
  }

  end(session: Session, reason: SessionEnd): void {
    session.ended ??= reason;
  }

  /** Ends every live session of a user ("log out everywhere"); returns how many. */
  revokeUser(user: SandboxUser): number {
    let count = 0;
    for (const { session } of new Set(this.bySecret.values())) {
      if (session.user === user && !session.ended) {
        this.end(session, 'revoked');
        count++;
      }
    }
    return count;
  }

  clear(): void {
    this.bySecret.clear();
  }
}
