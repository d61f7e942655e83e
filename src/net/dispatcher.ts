import { createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { SocksClient, SocksClientError } from 'socks';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import { ProxyError, UpstreamUnavailableError } from './errors.js';
import { formatHostPort, type ProxySpec } from './proxy-config.js';

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
 */
export function createDispatcher(proxy: ProxySpec | null, opts: DispatcherOptions = {}): Dispatcher {
  const options = { ...DEFAULTS, ...opts };
  const upstreamTls = options.ca === undefined ? {} : { ca: options.ca };
  let dispatcher: Dispatcher;
  if (proxy === null) {
    dispatcher = new Agent({ connect: { timeout: options.connectTimeoutMs, ...upstreamTls } });
  } else if (proxy.protocol === 'http') {
    // Our own CONNECT tunnel rather than undici's ProxyAgent: every handshake failure becomes a typed
    // ProxyError where it happens (ProxyAgent reports a 407 and a hanging proxy as generic errors), one
    // timeout covers TCP + CONNECT + TLS, and plain-http targets are tunnelled too (a sticky exit IP).
    dispatcher = new Agent({ connect: httpTunnelConnector(proxy, options.connectTimeoutMs, upstreamTls) });
  } else {
    // The `socks` client over our own TCP connection, as a connector: one timeout covers TCP + SOCKS + TLS,
    // every handshake failure becomes a typed error where it happens, and names are resolved on the proxy
    // side (like socks5h), so DNS leaks nothing from this host.
    dispatcher = new Agent({ connect: socksConnector(proxy, options.connectTimeoutMs, upstreamTls) });
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

/**
 * An undici connector that opens an HTTP CONNECT tunnel through `proxy` to the request's origin, then
 * TLS inside it for https origins. Errors before the tunnel is up are ProxyErrors; a 502/504 from the
 * proxy (it could not reach the origin) and TLS failures are the upstream's.
 */
function httpTunnelConnector(
  proxy: ProxySpec,
  timeoutMs: number,
  upstreamTls: tls.ConnectionOptions,
): buildConnector.connector {
  const authorization =
    proxy.username === undefined
      ? ''
      : `Proxy-Authorization: Basic ${Buffer.from(`${proxy.username}:${proxy.password ?? ''}`).toString('base64')}\r\n`;

  return (options, callback) => {
    const https = options.protocol === 'https:';
    const hostname = options.hostname.replace(/^\[(.*)\]$/, '$1');
    const target = formatHostPort(hostname, Number(options.port) || (https ? 443 : 80));
    const socket = net.connect({ host: proxy.host, port: proxy.port });
    let settled = false;
    let tunnelUp = false;

    const finish = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData).off('error', onError).off('close', onClose);
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
    const onClose = () => fail(new ProxyError('rejected', proxy, 'closed the connection before answering CONNECT'));

    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) {
        if (head.length > MAX_CONNECT_RESPONSE_BYTES) fail(new ProxyError('protocol', proxy, 'oversized CONNECT response'));
        return;
      }
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head.toString('latin1', 0, end));
      if (!status) return fail(new ProxyError('protocol', proxy, 'not an HTTP proxy'));
      const code = Number(status[1]);
      if (code === 407) return fail(new ProxyError('auth_failed', proxy, 'proxy authentication failed (407)'));
      if (code === 502 || code === 504) return fail(new UpstreamUnavailableError(`proxy could not reach ${target} (${code})`));
      if (code < 200 || code > 299) return fail(new ProxyError('rejected', proxy, `CONNECT ${target} answered ${code}`));
      // An origin speaks only after our request: bytes already here mean a confused proxy.
      if (head.length > end + 4) return fail(new ProxyError('protocol', proxy, 'data after the CONNECT response'));

      tunnelUp = true;
      socket.off('data', onData).off('close', onClose);
      socket.pause(); // back to paused mode: undici reads the socket with 'readable'
      if (!https) return succeed(socket);
      const secure = tls.connect({
        ...upstreamTls,
        socket,
        servername: options.servername || (net.isIP(hostname) ? undefined : hostname),
        ALPNProtocols: ['http/1.1'],
      });
      secure.once('secureConnect', () => {
        secure.off('error', fail); // undici owns the socket's errors from here on
        succeed(secure);
      });
      secure.once('error', fail);
    };

    socket.setNoDelay(true);
    socket.on('error', onError).on('close', onClose).on('data', onData);
    socket.once('connect', () => {
      socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${authorization}\r\n`);
    });
  };
}

// SOCKS5 CONNECT replies that mean the proxy works but cannot reach the upstream (RFC 1928 replies 3–6).
const SOCKS5_UPSTREAM_REPLIES = new Set(['NetworkUnreachable', 'HostUnreachable', 'ConnectionRefused', 'TTLExpired']);

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

/**
 * An undici connector that opens a SOCKS5 tunnel through `proxy` (username/password auth when given) to the
 * request's origin, then TLS inside it for https origins.
 */
function socksConnector(proxy: ProxySpec, timeoutMs: number, upstreamTls: tls.ConnectionOptions): buildConnector.connector {
  return (options, callback) => {
    const https = options.protocol === 'https:';
    const hostname = options.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(options.port) || (https ? 443 : 80);
    const target = formatHostPort(hostname, port);
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
    const timer = setTimeout(() => {
      fail(
        tunnelUp
          ? new UpstreamUnavailableError(`TLS handshake with ${target} timed out`)
          : new ProxyError('timeout', proxy, `no tunnel to ${target} after ${timeoutMs} ms`),
      );
    }, timeoutMs);
    const onError = (err: NodeJS.ErrnoException) => {
      if (tunnelUp) return fail(err);
      fail(new ProxyError('unreachable', proxy, `cannot connect (${err.code ?? err.message})`, { cause: err }));
    };

    socket.setNoDelay(true);
    socket.on('error', onError);
    socket.once('connect', () => {
      SocksClient.createConnection({
        command: 'connect',
        existing_socket: socket,
        timeout: timeoutMs,
        destination: { host: hostname, port },
        proxy: {
          host: proxy.host,
          port: proxy.port,
          type: 5,
          ...(proxy.username === undefined ? {} : { userId: proxy.username, password: proxy.password ?? '' }),
        },
      }).then(
        () => {
          if (settled) return;
          tunnelUp = true;
          if (!https) {
            if (finish()) callback(null, socket);
            return;
          }
          const secure = tls.connect({
            ...upstreamTls,
            socket,
            servername: options.servername || (net.isIP(hostname) ? undefined : hostname),
            ALPNProtocols: ['http/1.1'],
          });
          secure.once('secureConnect', () => {
            secure.off('error', fail); // undici owns the socket's errors from here on
            if (finish()) callback(null, secure);
          });
          secure.once('error', fail);
        },
        (err: unknown) => fail(err instanceof SocksClientError ? socksFailure(err, proxy, target) : (err as Error)),
      );
    });
  };
}
