import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { once } from 'node:events';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Dispatcher, ProxyAgent, request } from 'undici';
import { createDispatcher } from '../../src/net/dispatcher.js';
import { startHttpProxy, startSocksProxy } from '../support/proxies.js';
import { loadUndici } from '../../src/net/undici.js';

// Outbound HTTP loads undici on first use; these tests build dispatchers directly.
await loadUndici();

/** The test proxies themselves: forwarding, tunnelling, auth and source-address binding. */

let target: Server;
let targetUrl: string;

beforeAll(async () => {
  target = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ remote: req.socket.remoteAddress, path: req.url, auth: req.headers['proxy-authorization'] ?? null }));
  });
  target.listen(0, '127.0.0.1');
  await once(target, 'listening');
  targetUrl = `http://127.0.0.1:${(target.address() as net.AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => target.close(() => resolve())));

const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

async function fetchVia(dispatcher: Dispatcher, path = '/hello?x=1') {
  try {
    const response = await request(`${targetUrl}${path}`, { dispatcher });
    return { status: response.statusCode, body: (await response.body.json()) as Record<string, unknown> };
  } finally {
    await dispatcher.close();
  }
}

describe('startHttpProxy', () => {
  it('tunnels with CONNECT and forwards absolute URIs from the bound address, counting connections', async () => {
    const proxy = await startHttpProxy({ localAddress: '127.0.0.2' });
    try {
      const tunnelled = await fetchVia(new ProxyAgent({ uri: proxy.url }));
      expect(tunnelled.body).toMatchObject({ remote: '127.0.0.2', path: '/hello?x=1' });
      const forwarded = await fetchVia(new ProxyAgent({ uri: proxy.url, proxyTunnel: false }));
      expect(forwarded.body).toMatchObject({ remote: '127.0.0.2', path: '/hello?x=1', auth: null });
      expect(proxy.connections).toBe(2);
    } finally {
      await proxy.close();
    }
  });

  it('requires Proxy-Authorization when auth is set', async () => {
    const proxy = await startHttpProxy({ auth: { username: 'u', password: 'p' } });
    try {
      await expect(fetchVia(new ProxyAgent({ uri: proxy.url }))).rejects.toThrow();
      await expect(fetchVia(new ProxyAgent({ uri: proxy.url, proxyTunnel: false }))).rejects.toThrow(/407/);
      const raw = await new Promise<IncomingMessage>((resolve, reject) =>
        httpRequest({ host: proxy.host, port: proxy.port, path: `${targetUrl}/x` }, resolve).on('error', reject).end(),
      );
      raw.resume();
      expect(raw.statusCode).toBe(407);
      expect(raw.headers['proxy-authenticate']).toMatch(/^Basic/);
      const ok = await fetchVia(new ProxyAgent({ uri: proxy.url, token: basic('u', 'p') }));
      expect(ok.body.remote).toBe('127.0.0.1');
      expect(proxy.connections).toBe(1);
    } finally {
      await proxy.close();
    }
  });
});

/** FanGate's own SOCKS5 client (undici's Socks5ProxyAgent is experimental and warns). */
const socksVia = (proxy: { host: string; port: number }, auth: { username?: string; password?: string } = {}) =>
  createDispatcher({ protocol: 'socks5', host: proxy.host, port: proxy.port, ...auth });

describe('startSocksProxy', () => {
  it('connects from the bound address', async () => {
    const proxy = await startSocksProxy({ localAddress: '127.0.0.2' });
    try {
      expect((await fetchVia(socksVia(proxy))).body.remote).toBe('127.0.0.2');
      expect(proxy.connections).toBe(1);
    } finally {
      await proxy.close();
    }
  });

  it('checks username and password', async () => {
    const proxy = await startSocksProxy({ auth: { username: 'u', password: 'p' } });
    try {
      await expect(fetchVia(socksVia(proxy, { username: 'u', password: 'wrong' }))).rejects.toThrow();
      await expect(fetchVia(socksVia(proxy))).rejects.toThrow();
      const ok = await fetchVia(socksVia(proxy, { username: 'u', password: 'p' }));
      expect(ok.body.remote).toBe('127.0.0.1');
      expect(proxy.connections).toBe(1);
    } finally {
      await proxy.close();
    }
  });

  it('speaks RFC 1928 to a raw client, domain-name targets included', async () => {
    const proxy = await startSocksProxy();
    const socket = net.connect(proxy.port, proxy.host);
    try {
      await once(socket, 'connect');
      const replies: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => replies.push(chunk));
      socket.write(Buffer.from([5, 1, 0]));
      const port = Number(new URL(targetUrl).port);
      const host = Buffer.from('localhost');
      socket.write(Buffer.concat([Buffer.from([5, 1, 0, 3, host.length]), host, Buffer.from([port >> 8, port & 255])]));
      socket.write('GET /raw HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      await once(socket, 'end');
      const all = Buffer.concat(replies);
      expect([...all.subarray(0, 4)]).toEqual([5, 0, 5, 0]);
      expect(all.toString()).toContain('"path":"/raw"');
    } finally {
      socket.destroy();
      await proxy.close();
    }
  });
});
