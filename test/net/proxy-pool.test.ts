import { describe, expect, it } from 'vitest';
import { parseProxyPool } from '../../src/net/proxy-config.js';
import { createProxyPool } from '../../src/net/proxy-pool.js';

const spec = 'us=http://u:p@10.0.0.1:3128,http://10.0.0.2:3128,socks5://10.0.0.3:1080;uk=http://10.0.1.1:3128';

function pool(options: { cooldownMs?: number } = {}) {
  let clock = 0;
  const proxyPool = createProxyPool(parseProxyPool(spec), {
    now: () => clock,
    ...(options.cooldownMs === undefined ? {} : { failureCooldownMs: options.cooldownMs }),
  });
  return { proxyPool, advance: (ms: number) => (clock += ms) };
}
const host = (picked: { proxy: { host: string } } | null | undefined) => picked?.proxy.host ?? null;

describe('createProxyPool', () => {
  it('lists its countries', () => {
    const { proxyPool } = pool();
    expect(proxyPool.countries()).toEqual(['us', 'uk']);
    expect(proxyPool.has('us')).toBe(true);
    expect(proxyPool.has('UK')).toBe(true);
    expect(proxyPool.has('de')).toBe(false);
    expect(createProxyPool(new Map()).countries()).toEqual([]);
  });

  it('picks round robin with stable ids', () => {
    const { proxyPool } = pool();
    const picks = [1, 2, 3, 4].map(() => proxyPool.pick('us'));
    expect(picks.map(host)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.1']);
    expect(picks[0]!.proxyId).toBe(picks[3]!.proxyId);
    expect(picks[0]!.proxy).toMatchObject({ username: 'u', password: 'p' });
  });

  it('resolves a sticky proxy id back to its proxy', () => {
    const { proxyPool } = pool();
    const picked = proxyPool.pick('us')!;
    expect(proxyPool.get('us', picked.proxyId)).toEqual(picked);
    expect(proxyPool.get('uk', picked.proxyId)).toBeUndefined();
    expect(proxyPool.get('us', 'px_gone')).toBeUndefined();
  });

  it('honours exclude and answers null for an unknown or exhausted country', () => {
    const { proxyPool } = pool();
    const [a, b] = [proxyPool.pick('us')!, proxyPool.pick('us')!];
    for (let i = 0; i < 3; i++) expect(host(proxyPool.pick('us', { exclude: [a.proxyId, b.proxyId] }))).toBe('10.0.0.3');
    expect(proxyPool.pick('de')).toBeNull();
    expect(proxyPool.pick('uk', { exclude: [proxyPool.pick('uk')!.proxyId] })).toBeNull();
  });

  it('fails over inside the country, avoiding proxies that failed recently', () => {
    const { proxyPool, advance } = pool({ cooldownMs: 60_000 });
    const first = proxyPool.pick('us')!;
    const second = proxyPool.failover('us', first.proxyId)!;
    expect(second.proxyId).not.toBe(first.proxyId);
    expect(['10.0.0.2', '10.0.0.3']).toContain(host(second));

    advance(1000);
    const third = proxyPool.failover('us', second.proxyId)!;
    expect([first.proxyId, second.proxyId]).not.toContain(third.proxyId);
    // New accounts are not sent to proxies cooling down either.
    for (let i = 0; i < 3; i++) expect(proxyPool.pick('us')!.proxyId).toBe(third.proxyId);

    // Everything has failed: the one that failed longest ago comes back first.
    advance(1000);
    expect(proxyPool.failover('us', third.proxyId)!.proxyId).toBe(first.proxyId);

    // Once the cooldown is over every proxy is in the rotation again.
    advance(60_000);
    expect(new Set([1, 2, 3].map(() => proxyPool.pick('us')!.proxyId)).size).toBe(3);
  });

  it('answers null when the country has no other proxy', () => {
    const { proxyPool } = pool();
    const only = proxyPool.pick('uk')!;
    expect(proxyPool.failover('uk', only.proxyId)).toBeNull();
    expect(proxyPool.failover('de', 'px_any')).toBeNull();
  });
});
