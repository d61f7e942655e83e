import type { ProxyColumn } from '../db/schema.js';
import type { DispatcherCache } from '../net/dispatcher.js';
import type { ProxySpec } from '../net/proxy-config.js';
import type { ProxyPool } from '../net/proxy-pool.js';
import type { DriverContext, PlatformDriver, PlatformName } from './types.js';

/** The account's country has no usable proxy in FANGATE_PROXY_POOL (any more). */
export class NoPoolProxyError extends Error {
  readonly code = 'proxy_error';
  constructor(readonly country: string) {
    super(`no proxy for country "${country}" in FANGATE_PROXY_POOL`);
    this.name = 'NoPoolProxyError';
  }
}

/** What the platform sees of an account: its proxy, browser and device. */
export interface PlatformIdentity {
  proxy: ProxyColumn;
  /** Custom proxies only; pool proxies carry their own from FANGATE_PROXY_POOL. */
  proxyPassword?: string | null;
  userAgent: string;
  deviceId: string;
}

/** Builds driver contexts: the right driver, and a dispatcher through the account's own proxy. */
export function createPlatformAccess(deps: { drivers: Record<PlatformName, PlatformDriver>; dispatchers: DispatcherCache; pool: ProxyPool }) {
  function resolveProxy(identity: PlatformIdentity): ProxySpec | null {
    const { proxy } = identity;
    if (proxy.type === 'custom') {
      return {
        protocol: proxy.protocol ?? 'http',
        host: proxy.host!,
        port: proxy.port!,
        ...(proxy.username === undefined ? {} : { username: proxy.username }),
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

  return {
    pool: deps.pool,
    driver(platform: string): PlatformDriver {
      const driver = deps.drivers[platform as PlatformName];
      if (!driver) throw new Error(`no driver for platform ${platform}`);
      return driver;
    },
    resolveProxy,
    context(identity: PlatformIdentity, signal?: AbortSignal): DriverContext {
      const proxy = resolveProxy(identity);
      return {
        dispatcher: deps.dispatchers.get(proxy),
        proxy,
        userAgent: identity.userAgent,
        deviceId: identity.deviceId,
        ...(signal ? { signal } : {}),
      };
    },
  };
}

export type PlatformAccess = ReturnType<typeof createPlatformAccess>;
