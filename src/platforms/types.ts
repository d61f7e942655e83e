import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { ProxySpec } from '../net/proxy-config.js';

/**
 * One driver per platform behind this interface. A driver speaks the platform's HTTP API and
 * nothing else: no database, no state machine. Every step returns what happened; state a
 * later step needs travels in `resume`, which FanGate stores encrypted on the attempt, so the
 * next step can run on any worker.
 */
export type { AuthType, ChallengeKind, PlatformName } from '../db/schema.js';
import type { ChallengeKind, PlatformName } from '../db/schema.js';

/** Who the platform sees: every request of an account goes out with the same identity. */
export interface DriverContext {
  /** Outbound HTTP through the account's proxy (or direct). */
  dispatcher: Dispatcher;
  userAgent: string;
  /** Stable device fingerprint / device id of the account (OnlyFans x-bc, Fansly device id). */
  deviceId: string;
  /**
   * The proxy `dispatcher` goes through (null or absent: direct). Drivers only use it to classify network
   * failures: a dead SOCKS5 proxy surfaces from undici as a plain ECONNREFUSED, which is a `ProxyError` only
   * when the driver knows a proxy was in the way (the HTTP tunnel throws typed ProxyErrors by itself).
   */
  proxy?: ProxySpec | null;
  /** Cancels the upstream call (timeouts, shutdown). */
  signal?: AbortSignal;
}

/** The stored session. Opaque to everything but its driver; always stored encrypted. */
export interface PlatformSession {
  /** OnlyFans: the auth_id cookie; Fansly: the account id. */
  authId: string;
  /** OnlyFans: full cookie string `auth_id=…; sess=…; fp=…`; Fansly: empty. */
  cookies: string;
  /** OnlyFans x-bc header value; Fansly: device id. */
  xbc: string;
  /** Fansly auth token; unused on OnlyFans. */
  token?: string;
  userAgent: string;
}

export interface PlatformUser {
  id: string;
  username: string;
  name: string;
  avatar: string | null;
}

/**
 * How the platform ended a login. Network trouble is not a failure code: drivers throw
 * `ProxyError` / `UpstreamUnavailableError` from `net/` (use `classifyNetworkError`), and a platform
 * 5xx also throws `UpstreamUnavailableError`, so the service can retry or fail over the proxy.
 */
export type DriverFailureCode = 'invalid_credentials' | 'account_locked' | '2fa_failed' | 'session_invalid' | 'wrong_user';

export type StepResult =
  | { type: 'success'; session: PlatformSession; user: PlatformUser }
  | {
      type: 'challenge';
      kind: ChallengeKind;
      /** JSON-serialisable state for the next step (e.g. the platform's login token). */
      resume: unknown;
      phoneLast4?: string;
      emailMask?: string;
      faceUrl?: string;
      /** The platform already sent the email code (Fansly); OnlyFans waits for requestEmailCode. */
      emailSent?: boolean;
    }
  /** The platform rejected the code; the same challenge stands. */
  | { type: 'wrong_code'; resume: unknown }
  | { type: 'failure'; code: DriverFailureCode; message: string };

export type SessionCheck =
  | { valid: true; user: PlatformUser; /** cookies the platform rotated */ session?: PlatformSession }
  | { valid: false; code: 'session_invalid' | 'wrong_user'; message: string };

export interface UpstreamRequest {
  method: string;
  /** Path on the platform API, with query string, e.g. `/api2/v2/chats?limit=10`. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string>;
  /** The platform's body as it arrives; the caller consumes or destroys it. */
  body: Readable;
  /** Set when the platform rotated cookies: FanGate stores it back. */
  session?: PlatformSession;
}

export interface LoginCredentials {
  /** OnlyFans: email; Fansly: email or username. */
  login: string;
  password: string;
}

export interface PlatformDriver {
  readonly platform: PlatformName;
  startLogin(ctx: DriverContext, credentials: LoginCredentials): Promise<StepResult>;
  submitCode(ctx: DriverContext, resume: unknown, code: string): Promise<StepResult>;
  /** OnlyFans `needs_email`: ask the platform to send the device-check email. */
  requestEmailCode(ctx: DriverContext, resume: unknown): Promise<StepResult>;
  /** Asks whether the selfie was completed; a still-pending selfie answers the face challenge again. */
  confirmSelfie(ctx: DriverContext, resume: unknown): Promise<StepResult>;
  validateSession(ctx: DriverContext, session: PlatformSession): Promise<SessionCheck>;
  request(ctx: DriverContext, session: PlatformSession, request: UpstreamRequest): Promise<UpstreamResponse>;
  logout(ctx: DriverContext, session: PlatformSession): Promise<void>;
}
