import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, type Dispatcher } from 'undici';
import { createDispatcher, createDispatcherCache } from '../../src/net/dispatcher.js';
import { ProxyError, UpstreamUnavailableError, classifyNetworkError } from '../../src/net/errors.js';
import type { ProxySpec } from '../../src/net/proxy-config.js';
import { startHttpProxy, startSocksProxy } from '../support/proxies.js';
import { loadUndici } from '../../src/net/undici.js';

// Outbound HTTP loads undici on first use; these tests build dispatchers directly.
await loadUndici();

// Self-signed for localhost and 127.0.0.1, valid until 2126: lets the tests prove https through tunnels.
const TLS_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgy2Aw8gDZZtqkvm5E
tElruZ99Ygv0uQrHiaej8IaCd8ehRANCAASvhd6Rnvpyk5M9GJ/fMOUx4tH7sc5q
xAfXyOL7U01/SfySXl8LWxRimqjIUYI5rq9o599dS+XUmRijayDKjjvv
-----END PRIVATE KEY-----`;
const TLS_CERT = `-----BEGIN CERTIFICATE-----
MIIBojCCAUegAwIBAgIUcQiIq3XaJQjKnu0oDvqGYAG2jYwwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMZmFuZ2F0ZS10ZXN0MCAXDTI2MTEyMjE5MTIwMloYDzIxMjYx
MDI5MTkxMjAyWjAXMRUwEwYDVQQDDAxmYW5nYXRlLXRlc3QwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAASvhd6Rnvpyk5M9GJ/fMOUx4tH7sc5qxAfXyOL7U01/SfyS
Xl8LWxRimqjIUYI5rq9o599dS+XUmRijayDKjjvvo28wbTAdBgNVHQ4EFgQUB8q1
215QjVj/OboPD3xYOFmlud4wHwYDVR0jBBgwFoAUB8q1215QjVj/OboPD3xYOFml
ud4wDwYDVR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEw
CgYIKoZIzj0EAwIDSQAwRgIhAIboLh91lGp/n7O4cBLCznYvSItvz65BdNus4u2U
ULvDAiEAtgrWmyhxNTubo4HW0PfaHR5tXfCvsUiYFOW6ILBtDKQ=
-----END CERTIFICATE-----`;

// The proxies connect out from 127.0.0.2: an echoed remote address of 127.0.0.2 proves the proxy carried the request.
const PROXY_EXIT = '127.0.0.2';
const AUTH = { username: 'proxyuser', password: 'proxy-pa$$' };

interface Echo {
  remoteAddress: string | undefined;
  method: string | undefined;
  url: string | undefined;
  headers: http.IncomingHttpHeaders;
}

type Proxy = Awaited<ReturnType<typeof startHttpProxy>>;
const closers: (() => Promise<unknown> | void)[] = [];
let httpOrigin: string;
let httpsOrigin: string;
let deadPort: number;

const echo = (req: http.IncomingMessage, res: http.ServerResponse) => {
  const body: Echo = { remoteAddress: req.socket.remoteAddress, method: req.method, url: req.url, headers: req.headers };
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body));
};

/** Listens on loopback; at the end, closes the server and the connections proxies left open to it. */
async function listen(server: net.Server): Promise<number> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => sockets.add(socket.once('close', () => sockets.delete(socket))));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  return (server.address() as net.AddressInfo).port;
}

async function get(url: string, dispatcher: Dispatcher): Promise<Echo> {
  const res = await request(url, { dispatcher, headers: { 'user-agent': 'fangate-test' } });
  expect(res.statusCode).toBe(200);
  return (await res.body.json()) as Echo;
}

/** The classified failure of a request that must fail. */
async function failure(url: string, dispatcher: Dispatcher, proxy: ProxySpec | null) {
  const err = await request(url, { dispatcher }).then(
    () => expect.unreachable('the request should have failed'),
    (error: unknown) => error,
  );
  const classified = classifyNetworkError(err, proxy);
  expect(classified, String(err)).toBeDefined();
  return classified!;
}

function spec(protocol: ProxySpec['protocol'], proxy: Proxy, auth?: { username: string; password: string }): ProxySpec {
  return { protocol, host: proxy.host, port: proxy.port, ...auth };
}

beforeAll(async () => {
  httpOrigin = `http://127.0.0.1:${await listen(http.createServer(echo))}`;
  httpsOrigin = `https://127.0.0.1:${await listen(https.createServer({ key: TLS_KEY, cert: TLS_CERT }, echo))}`;
  const probe = net.createServer();
  deadPort = await listen(probe);
  await new Promise((resolve) => probe.close(resolve));
});

afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

describe('createDispatcher', () => {
  const dispatchers: Dispatcher[] = [];
  const make = (proxy: ProxySpec | null, opts: Parameters<typeof createDispatcher>[1] = {}) => {
    const dispatcher = createDispatcher(proxy, { ca: TLS_CERT, ...opts });
    dispatchers.push(dispatcher);
    return dispatcher;
  };
  afterAll(async () => {
    await Promise.all(dispatchers.map((dispatcher) => dispatcher.destroy()));
  });

  it('goes direct without a proxy', async () => {
    const direct = make(null);
    expect((await get(`${httpOrigin}/direct`, direct)).remoteAddress).toBe('127.0.0.1');
    expect((await get(`${httpsOrigin}/direct`, direct)).remoteAddress).toBe('127.0.0.1');
  });

  it('reports an unreachable upstream as upstream_unavailable when direct', async () => {
    const err = await failure(`http://127.0.0.1:${deadPort}/`, make(null), null);
    expect(err).toBeInstanceOf(UpstreamUnavailableError);
    expect(err.code).toBe('upstream_unavailable');
  });

  describe('through an HTTP proxy', () => {
    let open: Proxy;
    let authed: Proxy;
    beforeAll(async () => {
      open = await startHttpProxy({ localAddress: PROXY_EXIT });
      authed = await startHttpProxy({ localAddress: PROXY_EXIT, auth: AUTH });
      closers.push(() => open.close(), () => authed.close());
    });

    it('tunnels http and https targets with CONNECT, leaking no proxy header upstream', async () => {
      const dispatcher = make(spec('http', open));
      const plain = await get(`${httpOrigin}/plain?x=1`, dispatcher);
      expect(plain).toMatchObject({ remoteAddress: PROXY_EXIT, method: 'GET', url: '/plain?x=1' });
      expect(plain.headers['user-agent']).toBe('fangate-test');
      expect(plain.headers['proxy-authorization']).toBeUndefined();
      expect((await get(`${httpsOrigin}/secure`, dispatcher)).remoteAddress).toBe(PROXY_EXIT);
    });

    it('authenticates with basic proxy auth', async () => {
      const dispatcher = make(spec('http', authed, AUTH));
      const plain = await get(`${httpOrigin}/auth`, dispatcher);
      expect(plain.remoteAddress).toBe(PROXY_EXIT);
      expect(plain.headers['proxy-authorization']).toBeUndefined();
      expect((await get(`${httpsOrigin}/auth`, dispatcher)).remoteAddress).toBe(PROXY_EXIT);
    });

    it('reports wrong or missing credentials as a proxy_error', async () => {
      for (const proxy of [spec('http', authed, { ...AUTH, password: 'wrong' }), spec('http', authed)]) {
        const err = await failure(`${httpOrigin}/`, make(proxy), proxy);
        expect(err).toBeInstanceOf(ProxyError);
        expect(err).toMatchObject({ code: 'proxy_error', failure: 'auth_failed' });
        expect(err.message).not.toContain('wrong');
      }
    });

    it('reports a dead proxy port as a proxy_error', async () => {
      const proxy: ProxySpec = { protocol: 'http', host: '127.0.0.1', port: deadPort, ...AUTH };
      const err = await failure(`${httpsOrigin}/`, make(proxy), proxy);
      expect(err).toMatchObject({ code: 'proxy_error', failure: 'unreachable' });
      expect(err.message).not.toContain(AUTH.password);
    });

    it('reports a proxy that never answers CONNECT as a proxy_error timeout', async () => {
      const silent = net.createServer(() => undefined);
      const port = await listen(silent);
      const proxy: ProxySpec = { protocol: 'http', host: '127.0.0.1', port };
      const err = await failure(`${httpOrigin}/`, make(proxy, { connectTimeoutMs: 300 }), proxy);
      expect(err).toMatchObject({ code: 'proxy_error', failure: 'timeout' });
    });

    it('reports an upstream the proxy cannot reach as upstream_unavailable', async () => {
      const proxy = spec('http', open);
      const err = await failure(`http://127.0.0.1:${deadPort}/`, make(proxy), proxy);
      expect(err).toBeInstanceOf(UpstreamUnavailableError);
    });
  });

  describe('through a SOCKS5 proxy', () => {
    let open: Proxy;
    let authed: Proxy;
    beforeAll(async () => {
      open = await startSocksProxy({ localAddress: PROXY_EXIT });
      authed = await startSocksProxy({ localAddress: PROXY_EXIT, auth: AUTH });
      closers.push(() => open.close(), () => authed.close());
    });

    it('carries http and https requests, with no experimental-feature warning', async () => {
      const warnings: Error[] = [];
      const onWarning = (warning: Error) => warnings.push(warning);
      process.on('warning', onWarning);
      const dispatcher = make(spec('socks5', open));
      expect(await get(`${httpOrigin}/socks`, dispatcher)).toMatchObject({ remoteAddress: PROXY_EXIT, url: '/socks' });
      expect((await get(`${httpsOrigin}/socks`, dispatcher)).remoteAddress).toBe(PROXY_EXIT);
      await new Promise((resolve) => setImmediate(resolve));
      process.off('warning', onWarning);
      expect(warnings.map((w) => w.name)).not.toContain('ExperimentalWarning');
    });

    it('authenticates with username and password', async () => {
      const dispatcher = make(spec('socks5', authed, AUTH));
      expect((await get(`${httpOrigin}/socks-auth`, dispatcher)).remoteAddress).toBe(PROXY_EXIT);
      expect((await get(`${httpsOrigin}/socks-auth`, dispatcher)).remoteAddress).toBe(PROXY_EXIT);
    });

    it('reports wrong or missing credentials as a proxy_error', async () => {
      for (const proxy of [spec('socks5', authed, { ...AUTH, password: 'wrong' }), spec('socks5', authed)]) {
        const err = await failure(`${httpOrigin}/`, make(proxy), proxy);
        expect(err).toMatchObject({ code: 'proxy_error', failure: 'auth_failed' });
      }
    });

    it('reports a dead proxy port as a proxy_error', async () => {
      const proxy: ProxySpec = { protocol: 'socks5', host: '127.0.0.1', port: deadPort };
      const err = await failure(`${httpOrigin}/`, make(proxy), proxy);
      expect(err).toMatchObject({ code: 'proxy_error', failure: 'unreachable' });
    });

    it('reports an upstream the proxy cannot reach as upstream_unavailable', async () => {
      const proxy = spec('socks5', open);
      const err = await failure(`http://127.0.0.1:${deadPort}/`, make(proxy), proxy);
      expect(err).toBeInstanceOf(UpstreamUnavailableError);
    });
  });
});

describe('createDispatcherCache', () => {
  const proxy: ProxySpec = { protocol: 'http', host: '127.0.0.1', port: 3128, username: 'u', password: 'p' };

  it('reuses one dispatcher per distinct proxy, password included', async () => {
    const cache = createDispatcherCache();
    expect(cache.get(proxy)).toBe(cache.get({ ...proxy }));
    expect(cache.get(proxy)).not.toBe(cache.get({ ...proxy, password: 'rotated' }));
    expect(cache.get(null)).toBe(cache.get(null));
    expect(cache.size).toBe(3);
    await cache.close();
    expect(cache.size).toBe(0);
  });

  it('closes the least recently used dispatcher beyond maxEntries', async () => {
    const cache = createDispatcherCache({ maxEntries: 2 });
    const first = cache.get(proxy);
    cache.get(null);
    cache.get(proxy); // first is now the most recently used
    cache.get({ ...proxy, port: 3129 }); // evicts the direct one
    expect(cache.size).toBe(2);
    expect(cache.get(proxy)).toBe(first);
    await cache.close();
  });

  it('serves requests and closes them all', async () => {
    const cache = createDispatcherCache();
    expect((await get(`${httpOrigin}/cached`, cache.get(null))).remoteAddress).toBe('127.0.0.1');
    await cache.close();
  });
});

describe('classifyNetworkError', () => {
  const proxy: ProxySpec = { protocol: 'socks5', host: '127.0.0.1', port: 1 };

  it('looks through fetch() wrapping', async () => {
    const { fetch } = await import('undici');
    const dead = { ...proxy, port: deadPort };
    const dispatcher = createDispatcher(dead);
    const err = await fetch(`${httpOrigin}/`, { dispatcher }).catch((error: unknown) => error);
    expect(err).toBeInstanceOf(TypeError);
    expect(classifyNetworkError(err, dead)).toMatchObject({ code: 'proxy_error', failure: 'unreachable' });
    await dispatcher.destroy();
  });

  it('leaves errors that are not network failures alone', async () => {
    const dispatcher = createDispatcher(null);
    const err = await request(`${httpOrigin}/`, { dispatcher, signal: AbortSignal.abort() }).catch((error: unknown) => error);
    expect(classifyNetworkError(err, null)).toBeUndefined();
    expect(classifyNetworkError(new Error('bug'), proxy)).toBeUndefined();
    expect(classifyNetworkError('not an error', null)).toBeUndefined();
    await dispatcher.destroy();
  });
});
