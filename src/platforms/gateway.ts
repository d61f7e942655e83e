import type { ProxyColumn } from '../db/schema.js';
import type { DispatcherCache } from '../net/dispatcher.js';
import { ProxyError, UpstreamUnavailableError } from '../net/errors.js';
import type { ProxySpec } from '../net/proxy-config.js';
import { AddressRefusedError, type GuardOptions, resolveAllowedAddress } from '../net/address-guard.js';
import { customProxyErrors, type ProxyInput } from '../net/proxy-choice.js';
import type { ProxyPool } from '../net/proxy-pool.js';
import type { DriverContext, PlatformDriver, PlatformName } from './types.js';
import { loadUndici } from '../net/undici.js';

/** The account's country has no usable proxy in FANGATE_PROXY_POOL (any more). */
export class NoPoolProxyError extends Error {
  readonly code = 'proxy_error';
  constructor(readonly country: string) {
    super(`no proxy for country "${country}" in FANGATE_PROXY_POOL`);
    this.name = 'NoPoolProxyError';
  }
}

/** The platform did not answer within the call's time limit (every try). */
export class UpstreamTimeoutError extends Error {
  readonly code = 'upstream_timeout';
  constructor(readonly timeoutMs: number) {
    super(`the platform did not answer within ${Math.round(timeoutMs / 1000)} s`);
    this.name = 'UpstreamTimeoutError';
  }
}

/** The caller went away (`CallOptions.signal` aborted) before the platform answered: the call was dropped. */
export class CallAbandonedError extends Error {
  readonly code = 'call_abandoned';
  constructor(options?: ErrorOptions) {
    super('the caller went away before the platform answered', options);
    this.name = 'CallAbandonedError';
  }
}

/** What the platform sees of an account: its proxy, browser and device. */
export interface PlatformIdentity {
  proxy: ProxyColumn;
  /** Custom proxies only; pool proxies carry their own from FANGATE_PROXY_POOL. */
  proxyPassword?: string | null;
  /** Custom proxies only (a secret like the password); rows from before migration 0030 carry it in `proxy`. */
  proxyUsername?: string | null;
  userAgent: string;
  deviceId: string;
}

export interface CallOptions {
  /** Extra tries after the platform failed or timed out (never after a proxy failure). Default 0. */
  retries?: number;
  /** Pause before retry n is n × this. Default 0. */
  retryDelayMs?: number;
  /** Each try is aborted after this long. Default: none beyond the driver's own. */
  timeoutMs?: number;
  /**
   * The caller's: once aborted (the client hung up), the call is dropped — the request to the platform is
   * aborted, nothing is retried or failed over — and `CallAbandonedError` thrown. Like `timeoutMs`, it covers
   * the call until the driver answers; a streamed body read after that is the caller's to destroy.
   */
  signal?: AbortSignal;
  /**
   * A pool proxy failed and the call moved to another proxy of the same country: persist the move
   * (the account sticks to it from now on, DESIGN 8). Called before the retry.
   */
  onFailover?: (proxy: ProxyColumn) => Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The one way FanGate calls a platform: the right driver, a dispatcher through the account's own
 * proxy, retries of passing upstream failures, and a single failover of a pool proxy that fails.
 * What a failure means is the caller's business: it throws `ProxyError` / `NoPoolProxyError`,
 * `UpstreamUnavailableError` or `UpstreamTimeoutError` once it gives up.
 */
export function createPlatformGateway(deps: {
  drivers: Record<PlatformName, PlatformDriver>;
  dispatchers: DispatcherCache;
  pool: ProxyPool;
  /** SSRF guard of custom proxies (the operator's pool is trusted). */
  proxyGuard: GuardOptions;
}) {
  function resolveProxy(identity: PlatformIdentity): ProxySpec | null {
    const { proxy } = identity;
    if (proxy.type === 'custom') {
      return {
        protocol: proxy.protocol ?? 'http',
        host: proxy.host!,
        port: proxy.port!,
        ...((identity.proxyUsername ?? proxy.username) ? { username: (identity.proxyUsername ?? proxy.username)! } : {}),
        ...(identity.proxyPassword ? { password: identity.proxyPassword } : {}),
      };
    }
    if (proxy.type === 'country') {
      const pooled = (proxy.proxy_id && deps.pool.get(proxy.country!, proxy.proxy_id)) || deps.pool.pick(proxy.country!);
      // Never fall back to a direct connection: the creator asked for an exit in this country.
      if (!pooled) throw new NoPoolProxyError(proxy.country!);
      return pooled.proxy;
    }
    return null;
  }

  function driver(platform: PlatformName): PlatformDriver {
    const found = deps.drivers[platform];
    if (!found) throw new Error(`no driver for platform ${platform}`);
    return found;
  }

  function context(identity: PlatformIdentity, signal?: AbortSignal, resolved?: ProxySpec | null): DriverContext {
    const proxy = resolved === undefined ? resolveProxy(identity) : resolved;
    return {
      dispatcher: deps.dispatchers.get(proxy),
      proxy,
      userAgent: identity.userAgent,
      deviceId: identity.deviceId,
      ...(signal ? { signal } : {}),
    };
  }

  /**
   * The proxy to use, a custom one checked against the SSRF guard at every connect and pinned to the
   * address checked (a DNS answer that changed since the request cannot lead inside).
   */
  async function guarded(identity: PlatformIdentity): Promise<ProxySpec | null> {
    const spec = resolveProxy(identity);
    if (!spec || identity.proxy.type !== 'custom' || deps.proxyGuard.allowPrivate) return spec;
    try {
      const pinned = await resolveAllowedAddress(spec.host, deps.proxyGuard);
      return { ...spec, host: pinned.address, originalHost: spec.host };
    } catch (error) {
      if (error instanceof AddressRefusedError) throw new ProxyError('rejected', spec, error.message);
      throw error;
    }
  }

  /** `customProxy` errors of a request (422 `customProxy.host`), before anything is stored. */
  const checkCustomProxy = (proxy: ProxyInput | null | undefined) => customProxyErrors(proxy, deps.proxyGuard);

  async function call<T>(platform: PlatformName, identity: PlatformIdentity, fn: (driver: PlatformDriver, ctx: DriverContext) => Promise<T>, options: CallOptions = {}): Promise<T> {
    const chosen = driver(platform);
    await loadUndici(); // the dispatchers are undici's, loaded on the first call
    const retries = options.retries ?? 0;
    let failedOver = false;
    const caller = options.signal;
    for (let attempt = 0; ; attempt++) {
      if (caller?.aborted) throw new CallAbandonedError();
      // The limit runs until `fn` answers: a streamed body read after that is not cut off by it.
      const controller = options.timeoutMs === undefined && !caller ? undefined : new AbortController();
      const timer =
        controller && options.timeoutMs !== undefined
          ? setTimeout(() => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), options.timeoutMs)
          : undefined;
      const callerGone = () => controller?.abort(new DOMException('The caller went away', 'AbortError'));
      caller?.addEventListener('abort', callerGone, { once: true });
      const signal = controller?.signal;
      try {
        return await fn(chosen, context(identity, signal, await guarded(identity)));
      } catch (error) {
        // Whatever the abort looked like on the way (a reset, a proxy error), nobody waits for it any more.
        if (caller?.aborted) throw new CallAbandonedError({ cause: error });
        if (error instanceof ProxyError) {
          const proxy = identity.proxy;
          const next = !failedOver && proxy.type === 'country' && proxy.country ? deps.pool.failover(proxy.country, error.proxyId) : null;
          if (!next) throw error;
          failedOver = true;
          identity = { ...identity, proxy: { ...proxy, proxy_id: next.proxyId } };
          await options.onFailover?.(identity.proxy);
          continue;
        }
        const timedOut = signal?.aborted === true && !(error instanceof UpstreamUnavailableError);
        if (!(error instanceof UpstreamUnavailableError) && !timedOut) throw error;
        if (attempt >= retries) throw timedOut ? new UpstreamTimeoutError(options.timeoutMs!) : error;
        if (options.retryDelayMs) await sleep(options.retryDelayMs * (attempt + 1));
      } finally {
        clearTimeout(timer);
        caller?.removeEventListener('abort', callerGone);
      }
    }
  }

  return { pool: deps.pool, driver, resolveProxy, context, call, checkCustomProxy };
}

export type PlatformGateway = ReturnType<typeof createPlatformGateway>;
