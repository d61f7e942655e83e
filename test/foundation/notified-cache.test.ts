import { afterEach, describe, expect, it, vi } from 'vitest';
import { createNotifiedCache } from '../../src/lib/notified-cache.js';

describe('per-node notified cache', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('lets go of entries nobody asked for again once their TTL passes (no growth up to maxEntries)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const cache = createNotifiedCache<string, { id: string }>({ ttlMs: 1000, maxEntries: 10_000, live: () => true });
    for (let i = 0; i < 500; i++) await cache.load(`a${i}`, async () => ({ id: `a${i}` }));
    expect(cache.size).toBe(500);
    vi.setSystemTime(Date.now() + 1500);
    await cache.load('fresh', async () => ({ id: 'fresh' }));
    expect(cache.size).toBe(1);
    expect(cache.get('fresh')).toEqual({ id: 'fresh' });
  });

  it('keeps an entry that was loaded again, serves it from memory, and drops it on invalidation', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const cache = createNotifiedCache<string, number>({ ttlMs: 1000, maxEntries: 100, live: () => true });
    let loads = 0;
    const loader = async () => ++loads;
    await cache.load('x', loader);
    vi.setSystemTime(Date.now() + 600);
    await cache.load('y', loader);
    expect(await cache.load('x', loader)).toBe(1); // still fresh: from memory
    vi.setSystemTime(Date.now() + 600); // x expired, y not
    await cache.load('z', loader);
    expect(cache.get('x')).toBeUndefined();
    expect(cache.get('y')).toBe(2);
    cache.invalidate('y');
    expect(cache.get('y')).toBeUndefined();
    expect(await cache.load('y', loader)).toBe(4);
  });

  it('serves nothing from memory while NOTIFYs do not arrive', async () => {
    let live = true;
    const cache = createNotifiedCache<string, number>({ ttlMs: 60_000, maxEntries: 100, live: () => live });
    let loads = 0;
    await cache.load('k', async () => ++loads);
    live = false;
    expect(await cache.load('k', async () => ++loads)).toBe(2);
  });
  it('keeps a value put by its writer, and a load that overlapped the put does not replace it with what it read before', async () => {
    let live = true;
    const cache = createNotifiedCache<string, { v: number }>({ ttlMs: 60_000, maxEntries: 100, live: () => live });
    let release!: (value: { v: number }) => void;
    const slow = cache.load('a', () => new Promise((resolve) => (release = resolve)));
    cache.put('a', { v: 2 });
    release({ v: 1 }); // read before the write committed
    expect(await slow).toEqual({ v: 1 });
    expect(cache.get('a')).toEqual({ v: 2 });
    expect(await cache.load('a', async () => ({ v: 99 }))).toEqual({ v: 2 });
    // Without NOTIFYs flowing nothing is kept, not even a put.
    live = false;
    cache.put('b', { v: 1 });
    live = true;
    expect(cache.get('b')).toBeUndefined();
  });
});
