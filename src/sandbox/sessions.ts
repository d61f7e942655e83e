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
  /** Set by `POST /__sandbox/sessions/rotate`: the next authenticated answer rotates the secret. */
  rotateNext: boolean;
  /** Superseded secrets, oldest first (bounded: a `+rotate` session rotates on every answer). */
  retired: string[];
}

/** Superseded secrets remembered per session (to answer them precisely); older ones become unknown. */
const RETIRED_KEPT = 100;

export function randomToken(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}

export function randomHex(bytes = 16): string {
  return randomBytes(bytes).toString('hex');
}

/** OnlyFans `sess`: 32 hex chars; Fansly token: 48 base64url chars. */
function newSecret(user: SandboxUser): string {
  return user.platform === 'onlyfans' ? randomHex() : randomToken(36);
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
      secret: newSecret(user),
      secretIssuedAt: at,
      expiresAt: user.tags.has('expire') ? at + SANDBOX_LIMITS.expireSessionMs : null,
      ended: null,
      rotateNext: false,
      retired: [],
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

  /**
   * Whether an authenticated answer of `session` rotates its secret now: every answer of a `+rotate`
   * user, the next answer after `POST /__sandbox/sessions/rotate`, and (OnlyFans only) once the secret is
   * `sessRotateAfterMs` old.
   */
  dueForRotation(session: Session): boolean {
    if (session.user.tags.has('rotate') || session.rotateNext) return true;
    return session.user.platform === 'onlyfans' && this.now() - session.secretIssuedAt >= SANDBOX_LIMITS.sessRotateAfterMs;
  }

  /** Issues a new secret; the previous one keeps working for the grace period. */
  rotate(session: Session): string {
    const previous = this.bySecret.get(session.secret);
    if (previous) previous.validUntil = this.now() + SANDBOX_LIMITS.sessGraceMs;
    session.retired.push(session.secret);
    if (session.retired.length > RETIRED_KEPT) this.bySecret.delete(session.retired.shift()!);
    session.secret = newSecret(session.user);
    session.secretIssuedAt = this.now();
    session.rotateNext = false;
    this.bySecret.set(session.secret, { session, validUntil: Infinity });
    return session.secret;
  }

  end(session: Session, reason: SessionEnd): void {
    session.ended ??= reason;
  }

  /** Makes the next authenticated answer of every live session of a user rotate; returns how many. */
  rotateUserNext(user: SandboxUser): number {
    let count = 0;
    for (const session of this.liveSessionsOf(user)) {
      session.rotateNext = true;
      count++;
    }
    return count;
  }

  /** Ends every live session of a user ("log out everywhere"); returns how many. */
  revokeUser(user: SandboxUser): number {
    let count = 0;
    for (const session of this.liveSessionsOf(user)) {
      this.end(session, 'revoked');
      count++;
    }
    return count;
  }

  private liveSessionsOf(user: SandboxUser): Session[] {
    const sessions = new Set<Session>();
    for (const { session } of this.bySecret.values()) {
      if (session.user === user && !session.ended) sessions.add(session);
    }
    return [...sessions];
  }

  clear(): void {
    this.bySecret.clear();
  }
}
