import type { Transaction } from 'kysely';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { AccountRow, AccountView } from '../accounts/model.js';
import type { AccountHealthPort } from '../accounts/port.js';
import type { AccountStatus, DB, PlatformName, ProxyColumn } from '../db/schema.js';
import type { JobQueue } from '../jobs/queue.js';
import { ApiError, notFound } from '../lib/errors.js';
import { ProxyError, UpstreamUnavailableError } from '../net/errors.js';
import { NoPoolProxyError, type PlatformGateway, UpstreamTimeoutError } from '../platforms/gateway.js';
import { upstreamDurationMetric } from '../platforms/metrics.js';
import type { PlatformUser } from '../platforms/types.js';

/**
 * The health monitor (DESIGN 5): checks every active account's session on its interval, from a schedule
 * kept in the database (`accounts.next_check_at`). An invalid session starts a re-authentication where
 * FanGate can log in alone, otherwise expires the account. Passing failures back off.
 */

export type CheckResult = 'valid' | 'reauth_started' | 'reauth_deferred' | 'expired' | 'upstream_error' | 'skipped';

export interface CheckOutcome {
  result: CheckResult;
  sessionValid: boolean;
  attemptId: string | null;
  account: AccountRow | undefined;
}

/** What the monitor learns of a changed attempt (connect's attempt hook, structurally). */
export interface AttemptChangeLike {
  kind: string;
  state: string;
  accountId: string | null;
  priorAccountStatus: AccountStatus | null;
  errorCode: string | null;
}

export interface MonitorDeps {
  accounts: Pick<
    AccountHealthPort,
    'claimDue' | 'byId' | 'load' | 'canReauth' | 'view' | 'session' | 'identity' | 'recordValidCheck' | 'recordValidChecks' | 'recordFailedCheck' | 'storeRotatedSession' | 'beginReauth' | 'deferReauth' | 'expire' | 'afterFailedReauth'
  >;
  platforms: Pick<PlatformGateway, 'call'>;
  moveProxy: (accountId: string, from: ProxyColumn, to: ProxyColumn) => Promise<void>;
  /** Starts (or joins, single-flight per account) a re-authentication with the stored credentials. */
  reauthenticate: (orgId: string, platform: PlatformName, accountId: string) => Promise<{ attempt_id: string }>;
  metrics: Registry;
  logger: Logger;
  /** How often a worker looks for due accounts, ms. */
  tickMs?: number;
  /** Accounts claimed per statement. */
  batchSize?: number;
  /** Checks running at once per worker. */
  concurrency?: number;
  /** Retries of a re-authentication that failed for a passing reason before the account expires. */
  maxReauthRetries?: number;
  /** Time limit of one session check, ms. */
  timeoutMs?: number;
}

/** Valid checks of a claimed batch, stored together once the batch is done (the claim already set the next check). */
interface CheckBatch {
  valid: string[];
  profiles: Array<{ id: string; user: PlatformUser }>;
}

export const MONITOR_QUEUE = 'monitor-due-checks';
const PASSING_FAILURES = new Set(['upstream_unavailable', 'proxy_error']);

export function createMonitor(deps: MonitorDeps) {
  const { accounts, platforms, logger } = deps;
  const tickMs = deps.tickMs ?? 5_000;
  const batchSize = deps.batchSize ?? 200;
  const concurrency = deps.concurrency ?? 64;
  const maxReauthRetries = deps.maxReauthRetries ?? 8;
  const timeoutMs = deps.timeoutMs ?? 30_000;
  const checks = new Counter({
    name: 'fangate_health_checks_total',
    help: 'Health checks of account sessions by result (valid, reauth_started, reauth_deferred, expired, upstream_error, skipped).',
    labelNames: ['result'],
    registers: [deps.metrics],
  });
  const duration = upstreamDurationMetric(deps.metrics);

  function done(account: AccountRow, outcome: CheckOutcome, extra: Record<string, unknown> = {}): CheckOutcome {
    checks.inc({ result: outcome.result });
    logger.info(
      { accountId: account.id, orgId: account.org_id, platform: account.platform, result: outcome.result, attemptId: outcome.attemptId, nextCheckAt: outcome.account?.next_check_at ?? null, ...extra },
      'health check',
    );
    return outcome;
  }

  /** Logs in again, or expires the account when FanGate cannot (or the platform refuses for good). */
  async function recover(account: AccountRow, sessionEnc: string | null, reason: string): Promise<CheckOutcome> {
    if (!accounts.canReauth(account)) {
      const expired = await accounts.expire(account.id);
      return done(account, { result: 'expired', sessionValid: false, attemptId: null, account: expired }, { reason });
    }
    const marked = await accounts.beginReauth(account.id, sessionEnc);
    if (!marked) return done(account, { result: 'skipped', sessionValid: false, attemptId: null, account: await accounts.byId(account.id) }, { reason: 'changed meanwhile' });
    try {
      const { attempt_id } = await deps.reauthenticate(account.org_id, account.platform, account.id);
      return done(account, { result: 'reauth_started', sessionValid: false, attemptId: attempt_id, account: await accounts.byId(account.id) }, { reason });
    } catch (error) {
      // Too many logins this hour (FANGATE_ACCOUNT_LOGINS_PER_HOUR): wait for the budget, never lock the creator out.
      if (error instanceof ApiError && error.code === 'rate_limited') {
        const deferred = await accounts.deferReauth(account.id, error.retryAfterSec ?? 60);
        return done(account, { result: 'reauth_deferred', sessionValid: false, attemptId: null, account: deferred ?? (await accounts.byId(account.id)) }, { reason, retryAfterSec: error.retryAfterSec });
      }
      // E.g. the credentials were erased meanwhile: nothing can renew the session.
      logger.warn({ accountId: account.id, err: error }, 'could not start a re-authentication; expiring the account');
      const expired = await accounts.expire(account.id);
      return done(account, { result: 'expired', sessionValid: false, attemptId: null, account: expired }, { reason });
    }
  }

  /**
   * One check of one account (claimed by the schedule, or asked for by the API). With `batch`, a plain
   * valid result (no rotation, no profile change) is only noted there and stored for the whole batch at
   * once by the caller; the claim already scheduled the next check.
   */
  async function check(account: AccountRow, batch?: CheckBatch): Promise<CheckOutcome> {
    // Re-authenticating and due: a retry after a passing failure of the last login.
    if (account.status === 'reauthenticating') return recover(account, account.session_enc, 'retry');
    if (account.status !== 'active') return done(account, { result: 'skipped', sessionValid: false, attemptId: null, account }, { status: account.status });
    const session = accounts.session(account);
    if (!session) return recover(account, account.session_enc, 'no session');

    const started = performance.now();
    let outcome = 'unavailable';
    try {
      const result = await platforms.call(account.platform, accounts.identity(account), (driver, ctx) => driver.validateSession(ctx, session), {
        timeoutMs,
        onFailover: (to) => deps.moveProxy(account.id, account.proxy, to),
      });
      outcome = result.valid ? '2xx' : '4xx';
      if (result.valid && result.user.id === account.platform_user_id) {
        if (result.session && account.session_enc) await accounts.storeRotatedSession(account, account.session_enc, result.session);
        const user = result.user;
        if (batch) {
          if (user.username === account.platform_username && user.name === account.platform_name && user.avatar === account.platform_avatar) batch.valid.push(account.id);
          else batch.profiles.push({ id: account.id, user });
          return done(account, { result: 'valid', sessionValid: true, attemptId: null, account });
        }
        const row = await accounts.recordValidCheck(account, user);
        return done(account, { result: 'valid', sessionValid: true, attemptId: null, account: row ?? (await accounts.byId(account.id)) });
      }
      return await recover(account, account.session_enc, result.valid ? 'wrong_user' : result.code);
    } catch (error) {
      if (error instanceof UpstreamTimeoutError) outcome = 'timeout';
      else if (error instanceof ProxyError || error instanceof NoPoolProxyError) outcome = 'proxy_error';
      else if (!(error instanceof UpstreamUnavailableError)) throw error;
      // Passing: the session may well be fine. Ask again after a backoff, never give up on it here.
      await accounts.recordFailedCheck(account);
      return done(account, { result: 'upstream_error', sessionValid: false, attemptId: null, account: await accounts.byId(account.id) }, { reason: outcome });
    } finally {
      duration.observe({ platform: account.platform, outcome }, (performance.now() - started) / 1000);
    }
  }

  /** Claims due accounts batch by batch and checks them, `concurrency` at a time. */
  async function runDue(maxMs = Math.max(tickMs * 4, 10_000)): Promise<number> {
    const until = Date.now() + maxMs;
    let total = 0;
    for (;;) {
      const claimed = await accounts.claimDue(batchSize);
      total += claimed.length;
      let next = 0;
      const batch: CheckBatch = { valid: [], profiles: [] };
      const lane = async () => {
        while (next < claimed.length) {
          const account = claimed[next++]!;
          await check(account, batch).catch((error: unknown) => logger.error({ accountId: account.id, err: error }, 'health check failed'));
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, claimed.length) }, lane));
      await accounts.recordValidChecks(batch.valid, batch.profiles);
      if (claimed.length < batchSize || Date.now() > until) return total;
    }
  }

  return {
    check,
    runDue,

    /** `POST /api/accounts/{id}/check`. */
    async checkNow(orgId: string, accountId: string): Promise<{ session_valid: boolean; account: AccountView; attempt_id: string | null }> {
      const account = await accounts.load(orgId, accountId);
      if (!account) throw notFound('Account');
      const outcome = await check(account);
      const row = outcome.account ?? (await accounts.load(orgId, accountId));
      if (!row) throw notFound('Account');
      return { session_valid: outcome.sessionValid, account: accounts.view(row), attempt_id: outcome.attemptId };
    },

    /**
     * Attempt hook (runs in the attempt's transaction): a re-authentication the monitor started failed.
     * A passing failure stays `reauthenticating` with a retry scheduled; a final one announces the expiry.
     */
    async onAttemptChange(trx: Transaction<DB>, change: AttemptChangeLike): Promise<void> {
      if (change.kind !== 'reauthenticate' || change.state !== 'completed_failed' || !change.accountId) return;
      if (change.priorAccountStatus !== 'reauthenticating') return;
      const passing = change.errorCode !== null && PASSING_FAILURES.has(change.errorCode);
      const next = await accounts.afterFailedReauth(trx, change.accountId, passing, maxReauthRetries);
      if (next !== 'none') logger.info({ accountId: change.accountId, errorCode: change.errorCode, next }, 're-authentication failed');
    },

    async registerWorkers(jobs: Pick<JobQueue, 'every'>): Promise<void> {
      await jobs.every({ name: MONITOR_QUEUE, intervalMs: tickMs, handler: async () => void (await runDue()) });
    },
  };
}

export type Monitor = ReturnType<typeof createMonitor>;
