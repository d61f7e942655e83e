import {
  SANDBOX_EMAIL_CODE,
  SANDBOX_LIMITS,
  SANDBOX_PASSWORD,
  SANDBOX_SMS_CODE,
  isValidSandboxTotp,
} from './identities.js';
import { errors } from './errors.js';
import { randomToken, type Session, type SessionStore } from './sessions.js';
import type { Platform, SandboxUser } from './users.js';

export type ChallengeKind = 'email' | 'face' | 'app' | 'sms';

/** Where a login comes from; the session inherits the user agent and device. */
export interface LoginContext {
  userAgent: string;
  device: string;
  fp: string;
  address: string;
}

/**
 * A login waiting on the creator. Clients only hold `token` (the opaque login token), so any process
 * can continue the login.
 */
export interface LoginFlow extends LoginContext {
  token: string;
  user: SandboxUser;
  steps: ChallengeKind[];
  step: number;
  wrongCodes: number;
  emailSent: boolean;
  faceToken: string | null;
  faceCompleted: boolean;
  expiresAt: number;
}

export type LoginResult = { session: Session } | { flow: LoginFlow; challenge: ChallengeKind };

/** The platform-neutral part of logging in: password, lock-outs, challenge steps and codes. */
export class LoginService {
  private readonly flows = new Map<string, LoginFlow>();
  private readonly byFaceToken = new Map<string, LoginFlow>();

  constructor(
    private readonly sessions: SessionStore,
    private readonly now: () => number,
  ) {}

  /**
   * Counts the attempt, then checks the password. Every attempt counts toward the hourly limit, wrong
   * passwords included, as a brute-force guard would.
   */
  checkCredentials(user: SandboxUser, password: string): void {
    const now = this.now();
    if (user.lockedUntil > now) throw errors.suspiciousActivity(user.lockedUntil);
    user.loginTimes = user.loginTimes.filter((at) => at > now - SANDBOX_LIMITS.loginWindowMs);
    if (user.loginTimes.length >= SANDBOX_LIMITS.loginsPerWindow) {
      user.lockedUntil = now + SANDBOX_LIMITS.lockMs;
      user.loginTimes = [];
      throw errors.suspiciousActivity(user.lockedUntil);
    }
    user.loginTimes.push(now);
    if (password !== SANDBOX_PASSWORD) throw errors.invalidCredentials();
    if (user.tags.has('locked')) throw errors.accountLocked();
  }

  /** Opens a session at once when `steps` is empty, otherwise a login flow parked on the first step. */
  start(user: SandboxUser, context: LoginContext, steps: ChallengeKind[], emailSent = false): LoginResult {
    if (steps.length === 0) return { session: this.sessions.create(user, context) };
    const flow: LoginFlow = {
      ...context,
      token: `lt_${randomToken()}`,
      user,
      steps,
      step: 0,
      wrongCodes: 0,
      emailSent,
      faceToken: steps.includes('face') ? randomToken() : null,
      faceCompleted: false,
      expiresAt: this.now() + SANDBOX_LIMITS.loginTtlMs,
    };
    this.flows.set(flow.token, flow);
    if (flow.faceToken) this.byFaceToken.set(flow.faceToken, flow);
    return { flow, challenge: steps[0]! };
  }

  /** The unexpired flow behind a login token of `platform`. */
  resume(platform: Platform, token: string): LoginFlow {
    const flow = this.flows.get(token);
    if (!flow || flow.user.platform !== platform) throw errors.loginTokenInvalid();
    if (flow.expiresAt <= this.now()) {
      this.drop(flow);
      throw errors.loginTokenInvalid();
    }
    return flow;
  }

  current(flow: LoginFlow): ChallengeKind {
    return flow.steps[flow.step]!;
  }

  submitCode(flow: LoginFlow, rawCode: string): LoginResult {
    const challenge = this.current(flow);
    if (challenge === 'face') throw errors.challengeMismatch(challenge);
    const code = rawCode.trim();
    const valid =
      challenge === 'sms'
        ? code === SANDBOX_SMS_CODE
        : challenge === 'app'
          ? isValidSandboxTotp(code, this.now())
          : flow.emailSent && code === SANDBOX_EMAIL_CODE; // the email code exists only once sent
    if (valid) return this.advance(flow);
    flow.wrongCodes++;
    const remaining = SANDBOX_LIMITS.wrongCodesPerLogin - flow.wrongCodes;
    if (remaining <= 0) {
      this.drop(flow);
      throw errors.tooManyAttempts();
    }
    throw errors.wrongCode(remaining);
  }

  sendEmail(flow: LoginFlow): LoginResult {
    const challenge = this.current(flow);
    if (challenge !== 'email') throw errors.challengeMismatch(challenge);
    flow.emailSent = true;
    return { flow, challenge };
  }

  /** Poll of the selfie step: moves on once the creator confirmed on the face page. */
  checkFace(flow: LoginFlow): LoginResult {
    const challenge = this.current(flow);
    if (challenge !== 'face') throw errors.challengeMismatch(challenge);
    return flow.faceCompleted ? this.advance(flow) : { flow, challenge };
  }

  /** The creator confirmed the selfie (face page or control API). False when the token is unknown. */
  completeFace(faceToken: string): boolean {
    const flow = this.byFaceToken.get(faceToken);
    if (!flow || flow.expiresAt <= this.now()) return false;
    flow.faceCompleted = true;
    return true;
  }

  faceStatus(faceToken: string): 'pending' | 'completed' | null {
    const flow = this.byFaceToken.get(faceToken);
    if (!flow || flow.expiresAt <= this.now()) return null;
    return flow.faceCompleted ? 'completed' : 'pending';
  }

  clear(): void {
    this.flows.clear();
    this.byFaceToken.clear();
  }

  private advance(flow: LoginFlow): LoginResult {
    // Passing the email device check is what makes this address and device known to the platform.
    if (this.current(flow) === 'email') {
      flow.user.trustedAddresses.add(flow.address);
      flow.user.trustedDevices.add(flow.device);
    }
    flow.step++;
    if (flow.step < flow.steps.length) return { flow, challenge: this.current(flow) };
    this.drop(flow);
    return { session: this.sessions.create(flow.user, flow) };
  }

  private drop(flow: LoginFlow): void {
    this.flows.delete(flow.token);
    // The face page of a finished login keeps answering "completed" until the flow would have expired.
    if (flow.faceToken && !flow.faceCompleted) this.byFaceToken.delete(flow.faceToken);
  }
}
