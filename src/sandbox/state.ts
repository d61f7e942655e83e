import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyRequest } from 'fastify';
import { errors } from './errors.js';
import { SANDBOX_LIMITS } from './identities.js';
import { LoginService, type LoginFlow } from './login.js';
import { SessionStore, type Session } from './sessions.js';
import { UserDirectory, type Platform, type SandboxUser } from './users.js';

/** The user an in-flight request belongs to, when it arrived, and whether its answer rotated the session. */
export interface Attribution {
  user: SandboxUser;
  at: number;
  rotated: boolean;
}

/** Everything the sandbox remembers, in memory; `reset()` forgets it all. */
export class SandboxState {
  readonly users: Record<Platform, UserDirectory> = {
    onlyfans: new UserDirectory('onlyfans'),
    fansly: new UserDirectory('fansly'),
  };
  readonly sessions: SessionStore;
  readonly logins: LoginService;
  /**
   * Platform API requests received and not yet over (answer not fully sent, connection not closed): a client
   * that lets go of a request, before or during its answer, leaves this count (GET /__sandbox/open-requests).
   */
  openRequests = 0;
  /** Which user each in-flight request belongs to, for the request log. */
  private readonly attributed = new WeakMap<FastifyRequest, Attribution>();

  constructor(
    readonly now: () => number,
    /** The sandbox's own base URL (known once listening), for selfie links and avatars. */
    readonly baseUrl: () => string,
  ) {
    this.sessions = new SessionStore(now);
    this.logins = new LoginService(this.sessions, now);
  }

  /**
   * Marks `request` as an upstream call of `user` and plays the user's `+slow` / `+flaky` behaviour.
   * `+flaky` alternates deterministically: the 1st, 3rd, 5th… call succeed, the 2nd, 4th… answer 502.
   */
  async upstreamCall(request: FastifyRequest, user: SandboxUser): Promise<void> {
    this.attribute(request, user);
    user.calls++;
    if (user.tags.has('slow')) await sleep(SANDBOX_LIMITS.slowDelayMs);
    if (user.tags.has('flaky') && user.calls % 2 === 0) throw errors.badGateway();
  }

  /**
   * The login flow behind a login token, attributed to its user; it must be continued from the
   * browser (user agent) that started it.
   */
  async resumeLogin(request: FastifyRequest, platform: Platform, token: string): Promise<LoginFlow> {
    const flow = this.logins.resume(platform, token);
    await this.upstreamCall(request, flow.user);
    if (request.headers['user-agent'] !== flow.userAgent) throw errors.userAgentMismatch();
    return flow;
  }

  /** Marks `request` as one of `user`'s for the request log, without playing any behaviour. */
  attribute(request: FastifyRequest, user: SandboxUser): void {
    this.attributed.set(request, { user, at: this.now(), rotated: false });
  }

  attribution(request: FastifyRequest): Attribution | undefined {
    return this.attributed.get(request);
  }

  /**
   * Rotates the session's secret when it is due (see `SessionStore.dueForRotation`) and returns the new
   * value for the caller's `Set-Cookie`, or undefined.
   */
  rotateIfDue(request: FastifyRequest, session: Session): string | undefined {
    if (!this.sessions.dueForRotation(session)) return undefined;
    const attribution = this.attributed.get(request);
    if (attribution) attribution.rotated = true;
    return this.sessions.rotate(session);
  }

  reset(): void {
    for (const directory of Object.values(this.users)) directory.clear();
    this.sessions.clear();
    this.logins.clear();
  }
}
