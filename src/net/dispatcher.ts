import { createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import type { buildConnector, Dispatcher } from 'undici';
import { ProxyError, UpstreamUnavailableError } from './errors.js';
import { formatHostPort, type ProxySpec } from './proxy-config.js';
import { undici } from './undici.js';

export interface DispatcherOptions {
  /** TCP connect + proxy handshake + TLS handshake, in ms. Default 10 s. */
  connectTimeoutMs?: number;
  /** Time to the response headers, in ms. Default 30 s. */
  headersTimeoutMs?: number;
  /** Maximum silence while reading the body, in ms. Default 30 s. */
  bodyTimeoutMs?: number;
  /** Extra CA certificates trusted for upstream TLS (a platform or sandbox behind a private CA). */
  ca?: string | string[];
}

const DEFAULTS = { connectTimeoutMs: 10_000, headersTimeoutMs: 30_000, bodyTimeoutMs: 30_000 };
const MAX_CONNECT_RESPONSE_BYTES = 16 * 1024;

/**
 * An undici dispatcher that sends every request through `proxy` (or directly when null).
 * Failures of the proxy itself surface as `ProxyError`, or are recognised by `classifyNetworkError`.
 * Await `loadUndici()` (./undici.ts) before the first one.
 */
export function createDispatcher(proxy: ProxySpec | null, opts: DispatcherOptions = {}): Dispatcher {
  const options = { ...DEFAULTS, ...opts };
  const { Agent } = undici();
  const upstreamTls = options.ca === undefined ? {} : { ca: options.ca };
  let dispatcher: Dispatcher;
  if (proxy === null) {
    dispatcher = new Agent({ connect: { timeout: options.connectTimeoutMs, ...upstreamTls } });
  } else if (proxy.protocol === 'http') {
    dispatcher = new Agent({ connect: tunnelConnector(proxy, options.connectTimeoutMs, upstreamTls, httpConnect(proxy)) });
  } else {
    dispatcher = new Agent({
      connect: tunnelConnector(proxy, options.connectTimeoutMs, upstreamTls, socksConnect(proxy, options.connectTimeoutMs)),
    });
  }
  // Applied per request, so they hold whichever agent carries it.
  return dispatcher.compose((dispatch) => (request, handler) =>
    dispatch({ headersTimeout: options.headersTimeoutMs, bodyTimeout: options.bodyTimeoutMs, ...request }, handler),
  );
}

export interface DispatcherCache {
  /** The dispatcher for this proxy (null: direct), created on first use and then reused. */
  get(proxy: ProxySpec | null): Dispatcher;
  /** Closes every dispatcher, letting requests in flight finish. */
  close(): Promise<void>;
  readonly size: number;
}

/**
 * One dispatcher (and so one keep-alive connection pool) per distinct proxy, shared by every account that
 * uses it. Least recently used entries beyond `maxEntries` are closed gracefully, so thousands of custom
 * proxies do not pile up. Keys are hashes: no password is kept in a key or could appear in a dump of it.
 */
export function createDispatcherCache(opts: DispatcherOptions & { maxEntries?: number } = {}): DispatcherCache {
  const { maxEntries = 1000, ...dispatcherOptions } = opts;
  const entries = new Map<string, Dispatcher>();

  return {
    get(proxy) {
      const key = cacheKey(proxy);
      let dispatcher = entries.get(key);
      if (dispatcher) {
        entries.delete(key); // re-insert: Map order is the recency order
      } else {
        dispatcher = createDispatcher(proxy, dispatcherOptions);
        const oldest = entries.size >= maxEntries ? entries.keys().next().value : undefined;
        if (oldest !== undefined) {
          void entries.get(oldest)?.close().catch(() => undefined);
          entries.delete(oldest);
        }
      }
      entries.set(key, dispatcher);
      return dispatcher;
    },
    async close() {
      const all = [...entries.values()];
      entries.clear();
      await Promise.all(all.map((dispatcher) => dispatcher.close()));
    },
    get size() {
      return entries.size;
    },
  };
}

function cacheKey(proxy: ProxySpec | null): string {
  if (proxy === null) return 'direct';
  const { protocol, host, port, username = '', password = '' } = proxy;
  return createHash('sha256').update(JSON.stringify([protocol, host.toLowerCase(), port, username, password])).digest('hex');
}

type Handshake = (socket: net.Socket, destination: { host: string; port: number; target: string }) => Promise<void>;

/**
 * An undici connector that opens a tunnel through `proxy` to the request's origin with `handshake`, then TLS
 * inside it for https origins. One timeout covers TCP + handshake + TLS. Errors before the tunnel is up are
 * the proxy's (the handshake may also say the proxy could not reach the origin); TLS failures are the upstream's.
 */
function tunnelConnector(
  proxy: ProxySpec,
  timeoutMs: number,
  upstreamTls: tls.ConnectionOptions,
  handshake: Handshake,
): buildConnector.connector {
  return (options, callback) => {
    const https = options.protocol === 'https:';
    const host = options.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(options.port) || (https ? 443 : 80);
    const target = formatHostPort(host, port);
    const socket = net.connect({ host: proxy.host, port: proxy.port });
    let settled = false;
    let tunnelUp = false;

    const finish = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      socket.off('error', onError);
      return true;
    };
    const fail = (err: Error) => {
      if (!finish()) return;
      socket.destroy();
      callback(err, null);
    };
    const succeed = (connected: net.Socket) => {
      if (finish()) callback(null, connected);
    };
    const timer = setTimeout(() => {
      fail(
        tunnelUp
          ? new UpstreamUnavailableError(`TLS handshake with ${target} timed out`)
          : new ProxyError('timeout', proxy, `no tunnel to ${target} after ${timeoutMs} ms`),
      );
    }, timeoutMs);
    const onError = (err: NodeJS.ErrnoException) =>
      fail(tunnelUp ? err : new ProxyError('unreachable', proxy, `cannot connect (${err.code ?? err.message})`, { cause: err }));

    socket.setNoDelay(true);
    socket.on('error', onError);
    socket.once('connect', () => {
      handshake(socket, { host, port, target }).then(() => {
        if (settled) return;
        tunnelUp = true;
        if (!https) return succeed(socket);
        const secure = tls.connect({
          ...upstreamTls,
          socket,
          servername: options.servername || (net.isIP(host) ? undefined : host),
          ALPNProtocols: ['http/1.1'],
        });
        secure.once('secureConnect', () => {
          secure.off('error', fail); // undici owns the socket's errors from here on
          succeed(secure);
        });
        secure.once('error', fail);
      }, fail);
    });
  };
}

/**
 * HTTP CONNECT, our own rather than undici's ProxyAgent: every failure becomes a typed ProxyError where it
 * happens (ProxyAgent reports a 407 and a hanging proxy as generic errors), and plain-http targets are
 * tunnelled too (a sticky exit IP). A 502/504 from the proxy means it could not reach the origin.
 */
function httpConnect(proxy: ProxySpec): Handshake {
  const authorization =
    proxy.username === undefined
      ? ''
      : `Proxy-Authorization: Basic ${Buffer.from(`${proxy.username}:${proxy.password ?? ''}`).toString('base64')}\r\n`;

  return (socket, { target }) =>
    new Promise((resolve, reject) => {
      let head = Buffer.alloc(0);
      const done = (err?: Error) => {
        socket.off('data', onData).off('close', onClose);
        if (err) return reject(err);
        socket.pause(); // back to paused mode: undici reads the socket with 'readable'
        resolve();
      };
      const onClose = () => done(new ProxyError('rejected', proxy, 'closed the connection before answering CONNECT'));
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) {
          if (head.length > MAX_CONNECT_RESPONSE_BYTES) done(new ProxyError('protocol', proxy, 'oversized CONNECT response'));
          return;
        }
        const status = /^HTTP\/1\.[01] (\d{3})/.exec(head.toString('latin1', 0, end));
        if (!status) return done(new ProxyError('protocol', proxy, 'not an HTTP proxy'));
        const code = Number(status[1]);
        if (code === 407) return done(new ProxyError('auth_failed', proxy, 'proxy authentication failed (407)'));
        if (code === 502 || code === 504) return done(new UpstreamUnavailableError(`proxy could not reach ${target} (${code})`));
        if (code < 200 || code > 299) return done(new ProxyError('rejected', proxy, `CONNECT ${target} answered ${code}`));
        // An origin speaks only after our request: bytes already here mean a confused proxy.
        if (head.length > end + 4) return done(new ProxyError('protocol', proxy, 'data after the CONNECT response'));
        done();
      };
      socket.on('data', onData).on('close', onClose);
      socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${authorization}\r\n`);
    });
}

// SOCKS5 CONNECT replies that mean the proxy works but cannot reach the upstream (RFC 1928 replies 3–6).
const SOCKS5_UPSTREAM_REPLIES = new Set(['NetworkUnreachable', 'HostUnreachable', 'ConnectionRefused', 'TTLExpired']);

/**
 * SOCKS5 CONNECT (username/password auth when given) by the maintained `socks` client over our socket. Names
 * are resolved on the proxy side (like socks5h), so DNS leaks nothing from this host.
 */
function socksConnect(proxy: ProxySpec, timeoutMs: number): Handshake {
  const auth = proxy.username === undefined ? {} : { userId: proxy.username, password: proxy.password ?? '' };
  return async (socket, { host, port, target }) => {
    // Loaded with the first SOCKS5 proxy used, not at start.
    const { SocksClient, SocksClientError } = await import('socks');
    try {
      await SocksClient.createConnection({
        command: 'connect',
        existing_socket: socket,
        timeout: timeoutMs,
        destination: { host, port },
        proxy: { host: proxy.host, port: proxy.port, type: 5, ...auth },
      });
    } catch (err) {
      throw err instanceof SocksClientError ? socksFailure(err, proxy, target) : err;
    }
  };
}

/** Sorts a failed SOCKS5 handshake (the `socks` client reports it as a message) into our errors. */
function socksFailure(err: Error, proxy: ProxySpec, target: string): Error {
  const message = err.message;
  if (/Authentication failed|no accepted authentication type/.test(message)) {
    return new ProxyError('auth_failed', proxy, 'SOCKS5 authentication failed', { cause: err });
  }
  const reply = /^Socks5 proxy rejected connection - (\w+)/.exec(message)?.[1];
  if (reply && SOCKS5_UPSTREAM_REPLIES.has(reply)) {
    return new UpstreamUnavailableError(`proxy could not reach ${target} (${reply})`, { cause: err });
  }
  if (reply === 'NotAllowed') return new ProxyError('rejected', proxy, 'connection not allowed by the proxy', { cause: err });
  if (message === 'Socket closed') return new ProxyError('rejected', proxy, 'closed the connection during the SOCKS5 handshake', { cause: err });
  return new ProxyError('protocol', proxy, message, { cause: err });
}
