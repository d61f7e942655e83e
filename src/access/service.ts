import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AccountRow } from '../accounts/model.js';
import type { AccountHealthPort } from '../accounts/port.js';
import type { ProxyColumn } from '../db/schema.js';
import { ApiError, callerGone, notFound } from '../lib/errors.js';
import { ProxyError, UpstreamUnavailableError } from '../net/errors.js';
import { capabilitiesOf } from '../platforms/capabilities.js';
import { CallAbandonedError, NoPoolProxyError, type PlatformGateway, type PlatformIdentity, UpstreamTimeoutError } from '../platforms/gateway.js';
import type { PlatformSession } from '../platforms/types.js';
import { statusOutcome, upstreamDurationMetric } from '../platforms/metrics.js';
import type { BucketDecision, AccessBucket } from './bucket.js';

/**
 * The Access API (DESIGN 10): one call to the platform's API with the account's session, user agent,
 * device and proxy, answered back as the platform answered it. Rotated cookies are stored back at once;
 * a refused session starts a health check of the account.
 */

export interface AccessServiceDeps {
  accounts: Pick<AccountHealthPort, 'current' | 'session' | 'identity' | 'storeRotatedSession'>;
  platforms: Pick<PlatformGateway, 'call'>;
  /** Persists a pool-proxy failover (accounts' moveProxy). */
  moveProxy: (accountId: string, from: ProxyColumn, to: ProxyColumn) => Promise<void>;
  /** Runs a health check of the account now (the monitor); says whether it started a re-authentication. */
  checkNow: (account: AccountRow) => Promise<{ sessionValid: boolean; attemptId: string | null }>;
  bucket: AccessBucket;
  metrics: Registry;
  logger: Logger;
  /** Upstream time limit, ms (DESIGN 10: 30 s). */
  timeoutMs?: number;
}

export interface ProxyCall {
  method: string;
  /** The path after `/proxy/`, without query string (may start with the API root, which is stripped). */
  path: string;
  /** The raw query string, without `?` ('' for none). */
  query: string;
  contentType?: string;
  /** The caller's `accept-encoding`: a compressed answer is relayed as it is, with its `content-encoding`. */
  acceptEncoding?: string;
  body?: Buffer;
  /** The caller's: aborted when the client hangs up, which drops the platform request still waiting for its answer (or a 403 still being read). */
  signal?: AbortSignal;
}

export interface ProxyAnswer {
  status: number;
  headers: Record<string, string>;
  /** The platform's body, streamed as it arrives (the route pipes it to the caller with backpressure). */
  body: Readable;
  rate: BucketDecision;
}

/** 429 with the bucket's numbers; the problem still carries RateLimit headers. */
export class AccessRateLimitedError extends ApiError {
  constructor(
    readonly rate: BucketDecision,
    ratePerMin: number,
  ) {
    super(429, 'rate_limited', `Access API limit of ${ratePerMin} requests per minute (burst ${rate.limit}) for this account exceeded.`, {
      retryAfterSec: rate.retryAfterSec,
    });
  }
}

const RETRY_AFTER_REAUTHENTICATING_SEC = 5;
const DECRYPTED_MAX = 10_000;
const RETRY_AFTER_AWAITING_2FA_SEC = 30;

/**
 * Hop-by-hop and cookie headers never pass in either direction; the driver adds the session's own. The body
 * is relayed byte for byte (streamed, so without its length), so its `content-encoding` passes with it.
 */
const RESPONSE_DROPPED = new Set(['content-length', 'date', 'server', 'keep-alive', 'connection', 'transfer-encoding']);

export function createAccessService(deps: AccessServiceDeps & { ratePerMin: number }) {
  const { accounts, platforms, logger } = deps;
  const timeoutMs = deps.timeoutMs ?? 30_000;
  const duration = upstreamDurationMetric(deps.metrics);

  /**
   * Decrypted sessions and identities per node, keyed by the account and its ciphertext: a call reads the
   * account row (its status is always current) but decrypts only after a change (a rotation, a new
   * login, a vault rotation give a new ciphertext). A ciphertext is bound to its row, so the same
   * ciphertext of the same account is the same secret.
   */
  const decrypted = new Map<string, { key: string; session: PlatformSession | null; identity: PlatformIdentity }>();
  function secretsOf(account: AccountRow) {
    const key = `${account.session_enc ?? ''}|${account.proxy_password_enc ?? ''}|${account.proxy_username_enc ?? ''}|${JSON.stringify(account.proxy)}|${account.user_agent}|${account.device_id}`;
    const hit = decrypted.get(account.id);
    if (hit && hit.key === key) return hit;
    const entry = { key, session: accounts.session(account), identity: accounts.identity(account) };
    decrypted.delete(account.id);
    if (decrypted.size >= DECRYPTED_MAX) decrypted.delete(decrypted.keys().next().value as string);
    decrypted.set(account.id, entry);
    return entry;
  }

  /**
   * The account, if it can be used right now (503 while re-authenticating, 410 when expired). Read through
   * the node's account cache, which every change of the account clears by NOTIFY.
   */
  async function usable(orgId: string, accountId: string) {
    const account = await accounts.current(orgId, accountId);
    if (!account) throw notFound('Account');
    if (account.status === 'reauthenticating' || account.status === 'awaiting_2fa') {
      const waiting = account.status === 'awaiting_2fa';
      throw new ApiError(
        503,
        'account_reauthenticating',
        waiting
          ? 'The account is re-authenticating and waits for the creator to answer a verification step.'
          : 'The account is re-authenticating; try again shortly.',
        { retryable: true, retryAfterSec: waiting ? RETRY_AFTER_AWAITING_2FA_SEC : RETRY_AFTER_REAUTHENTICATING_SEC },
      );
    }
    const secrets = account.status === 'expired' ? null : secretsOf(account);
    const session = secrets?.session;
    if (!secrets || !session || !account.session_enc) {
      throw new ApiError(410, 'account_expired', 'The session of this account has expired. Reconnect it (PUT /api/authenticate/{account_id}/credentials, or re-authenticate).', {
        retryable: false,
      });
    }
    return { account, session, sessionEnc: account.session_enc, identity: secrets.identity };
  }

  /** `users/me` and `api2/v2/users/me` are the same call: the path below the platform's API root. */
  function upstreamPath(apiRoot: string, path: string, query: string): string {
    const root = apiRoot.replace(/^\//, '');
    let rest = path.replace(/^\/+/, '');
    if (rest === root) rest = '';
    else if (rest.startsWith(`${root}/`)) rest = rest.slice(root.length + 1);
    return `${apiRoot}/${rest}${query ? `?${query}` : ''}`;
  }

  return {
    async proxy(orgId: string, accountId: string, call: ProxyCall): Promise<ProxyAnswer> {
      const { account, session, sessionEnc, identity } = await usable(orgId, accountId);
      const rate = await deps.bucket.take(account.id);
      if (!rate.allowed) throw new AccessRateLimitedError(rate, deps.ratePerMin);

      const path = upstreamPath(capabilitiesOf(account.platform).apiRoot, call.path, call.query);
      const started = performance.now();
      let outcome = 'unavailable';
      try {
        const answer = await platforms.call(
          account.platform,
          identity,
          (driver, ctx) =>
            driver.request(ctx, session, {
              method: call.method,
              path,
              headers: {
                ...(call.contentType ? { 'content-type': call.contentType } : {}),
                ...(call.acceptEncoding ? { 'accept-encoding': call.acceptEncoding } : {}),
              },
              ...(call.body && call.body.length > 0 ? { body: call.body } : {}),
            }),
          // Never retried: exactly one platform request per call (a failed pool proxy reached no platform).
          { timeoutMs, ...(call.signal ? { signal: call.signal } : {}), onFailover: (to) => deps.moveProxy(account.id, account.proxy, to) },
        );
        outcome = statusOutcome(answer.status);
        if (answer.session) {
          const stored = await accounts.storeRotatedSession(account, sessionEnc, answer.session);
          logger.debug({ accountId: account.id, stored }, 'platform rotated the session');
        }
        let body = answer.body;
        let refused = answer.status === 401;
        if (answer.status === 403) {
          // Read (a bounded part of) a 403 to tell "logged out" from a plain refusal; pass it on as read. The
          // caller may hang up meanwhile: the platform's body may come slowly, and nobody waits for it then.
          const head = await readHead(body, LOGGED_OUT_SCAN_BYTES, call.signal);
          refused = loggedOut(head.bytes);
          body = head.rest;
        }
        if (refused) {
          discard(body);
          const check = await deps.checkNow(account).catch((error: unknown) => {
            logger.warn({ accountId: account.id, err: error }, 'health check after a refused session failed');
            return { sessionValid: false, attemptId: null };
          });
          throw new ApiError(
            401,
            'session_expired',
            check.attemptId
              ? "The platform refused the account's session; a re-authentication started (attempt_id in this problem). Retry once the account is active again."
              : check.sessionValid
                ? 'The platform refused this request; the session itself is still valid.'
                : "The platform refused the account's session and FanGate cannot renew it alone: reconnect the account.",
            { retryable: check.attemptId !== null || check.sessionValid, extra: { attempt_id: check.attemptId, upstreamStatus: answer.status } },
          );
        }
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(answer.headers)) if (!RESPONSE_DROPPED.has(name)) headers[name] = value;
        return { status: answer.status, headers, body, rate };
      } catch (error) {
        if (error instanceof ApiError) throw error;
        if (error instanceof CallAbandonedError) {
          outcome = 'client_closed';
          throw callerGone();
        }
        if (error instanceof NoPoolProxyError || error instanceof ProxyError) {
          outcome = 'proxy_error';
          const detail = error instanceof ProxyError ? error.publicMessage : `${error.message}.`;
          throw new ApiError(502, 'upstream_error', `The account's proxy failed: ${detail}`, { retryable: true, extra: { upstreamStatus: null } });
        }
        if (error instanceof UpstreamTimeoutError) {
          outcome = 'timeout';
          throw new ApiError(504, 'upstream_timeout', `The platform did not answer within ${Math.round(timeoutMs / 1000)} s.`, { retryable: true });
        }
        if (error instanceof UpstreamUnavailableError) {
          outcome = 'unavailable';
          throw new ApiError(502, 'upstream_error', `The platform could not be reached: ${error.message}.`, {
            retryable: true,
            extra: { upstreamStatus: error.upstreamStatus ?? null },
          });
        }
        throw error;
      } finally {
        duration.observe({ platform: account.platform, outcome }, (performance.now() - started) / 1000);
      }
    },
  };
}

const LOGGED_OUT_SCAN_BYTES = 64 * 1024;

/** Lets go of a body nobody will read (undici reports the abort as an error event: nobody must hear it as a crash). */
function discard(stream: Readable): void {
  stream.on('error', () => undefined);
  stream.destroy();
}

/**
 * The first `max` bytes (or all, when shorter) of a stream, and a stream of the whole body again. Once `signal`
 * aborts, the read stops and the stream is let go of (and so the platform's request): `CallAbandonedError`.
 */
async function readHead(stream: Readable, max: number, signal?: AbortSignal): Promise<{ bytes: Buffer; rest: Readable }> {
  const chunks: Buffer[] = [];
  let size = 0;
  const iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let done = false;
  // Ends the pending read (with a premature close, answered below as the caller's leaving).
  const abandon = () => discard(stream);
  signal?.addEventListener('abort', abandon, { once: true });
  try {
    if (signal?.aborted) abandon();
    while (size < max) {
      const next = await iterator.next();
      if (next.done) {
        done = true;
        break;
      }
      chunks.push(next.value);
      size += next.value.length;
    }
  } catch (error) {
    discard(stream);
    if (signal?.aborted) throw new CallAbandonedError({ cause: error });
    // The platform's connection failed in the middle of its answer: a 502 like any transport failure.
    throw new UpstreamUnavailableError('the connection ended in the middle of its answer', { cause: error, upstreamStatus: 403 });
  } finally {
    signal?.removeEventListener('abort', abandon);
  }
  async function* whole() {
    try {
      yield* chunks;
      if (done) return;
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
    } finally {
      // The caller went away (or all was read): let go of the platform's connection.
      discard(stream);
    }
  }
  return { bytes: Buffer.concat(chunks), rest: Readable.from(whole(), { objectMode: false }) };
}

/** A 403 that means "logged out" (platforms answer some dead sessions 403 rather than 401). */
function loggedOut(body: Buffer): boolean {
  const text = body.subarray(0, 2048).toString('utf8').toLowerCase();
  return /logged[ _-]?out|session_(invalid|expired)|not authenticated|login required/.test(text);
}

export type AccessService = ReturnType<typeof createAccessService>;
