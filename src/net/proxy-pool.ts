import { proxyId, type ProxySpec } from './proxy-config.js';

export interface PooledProxy {
  proxy: ProxySpec;
  /** Stable and non-secret: stored on the account to keep its proxy (platforms bind sessions to the IP). */
  proxyId: string;
}

export interface ProxyPool {
  countries(): string[];
  has(country: string): boolean;
  /** The pool proxy with this id, to resolve an account's sticky `proxyId`; undefined once it left the pool. */
  get(country: string, proxyId: string): PooledProxy | undefined;
  /** A proxy for a new account: round robin, skipping `exclude` and proxies that failed recently. */
  pick(country: string, options?: { exclude?: readonly string[] }): PooledProxy | null;
  /**
   * `currentProxyId` failed: records it and returns another proxy of the same country (round robin over
   * those that have not failed recently, else the one that failed longest ago), or null when there is none.
   */
  failover(country: string, currentProxyId: string): PooledProxy | null;
}

export interface ProxyPoolOptions {
  /** How long a failed proxy is avoided by `pick` and `failover`, in ms. Default 5 min. */
  failureCooldownMs?: number;
  now?: () => number;
}

/**
 * The operator's proxies by country (`FANGATE_PROXY_POOL`). Pure selection logic: the sticky choice lives
 * on the account row, so what this keeps in memory (rotation cursors, failure times) is only a hint and
 * may differ between nodes without harm.
 */
export function createProxyPool(pool: Map<string, ProxySpec[]>, options: ProxyPoolOptions = {}): ProxyPool {
  const { failureCooldownMs = 5 * 60_000, now = Date.now } = options;
  const byCountry = new Map<string, PooledProxy[]>();
  for (const [country, proxies] of pool) {
    byCountry.set(country.toLowerCase(), proxies.map((proxy) => ({ proxy, proxyId: proxyId(proxy) })));
  }
  const cursors = new Map<string, number>();
  const lastFailure = new Map<string, number>();

  const entries = (country: string): PooledProxy[] => byCountry.get(country.toLowerCase()) ?? [];
  const coolingDown = (entry: PooledProxy): boolean => {
    const failedAt = lastFailure.get(entry.proxyId);
    return failedAt !== undefined && now() - failedAt < failureCooldownMs;
  };
  /** Round robin over the candidates not cooling down; if all are, the one that failed longest ago. */
  const choose = (country: string, candidates: PooledProxy[]): PooledProxy | null => {
    const healthy = candidates.filter((entry) => !coolingDown(entry));
    if (healthy.length > 0) {
      const key = country.toLowerCase();
      const turn = cursors.get(key) ?? 0;
      cursors.set(key, turn + 1);
      return healthy[turn % healthy.length]!;
    }
    const failedAt = (entry: PooledProxy) => lastFailure.get(entry.proxyId) ?? 0;
    return candidates.reduce<PooledProxy | null>((best, entry) => (best && failedAt(best) <= failedAt(entry) ? best : entry), null);
  };

  return {
    countries: () => [...byCountry.keys()],
    has: (country) => entries(country).length > 0,
    get: (country, id) => entries(country).find((entry) => entry.proxyId === id),
    pick: (country, { exclude = [] } = {}) =>
      choose(country, entries(country).filter((entry) => !exclude.includes(entry.proxyId))),
    failover(country, currentProxyId) {
      lastFailure.set(currentProxyId, now());
      return choose(country, entries(country).filter((entry) => entry.proxyId !== currentProxyId));
    },
  };
}
