import { describeProxy, formatHostPort, proxyId, type ProxySpec } from './proxy-config.js';

/** Why a proxy could not be used. */
export type ProxyFailure =
  | 'unreachable' // no TCP connection to the proxy (refused, unknown host, no route)
  | 'timeout' // the proxy did not complete its handshake in time
  | 'auth_failed' // 407, or SOCKS5 username/password refused
  | 'rejected' // the proxy refused to open the tunnel for another reason (403, SOCKS "not allowed", …)
  | 'protocol'; // the proxy answered something that is not HTTP CONNECT / SOCKS5

/**
 * The account's proxy failed: the attempt ends `proxy_error` and a pool proxy is failed over.
 * Never carries the proxy password (only `proxyId` and a redacted description).
 */
export class ProxyError extends Error {
  readonly code = 'proxy_error';
  readonly proxyId: string;
  /**
   * For the API user: which proxy (protocol, host and port), never what the probe found (refused,
   * closed, timed out…: that would turn `customProxy` into a port scanner) nor the proxy's username.
   */
  readonly publicMessage: string;

  constructor(
    readonly failure: ProxyFailure,
    proxy: ProxySpec,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`proxy ${describeProxy(proxy)}: ${detail}`, options);
    this.name = 'ProxyError';
    this.proxyId = proxyId(proxy);
    this.publicMessage = `The proxy ${proxy.protocol}://${formatHostPort(proxy.originalHost ?? proxy.host, proxy.port)} could not be used.`;
  }
}

/** The platform could not be reached or did not answer in time (directly, or behind a working proxy). */
export class UpstreamUnavailableError extends Error {
  readonly code = 'upstream_unavailable';
  /** The platform's HTTP status when it answered (e.g. 502); undefined when it could not be reached. */
  readonly upstreamStatus: number | undefined;

  constructor(message: string, options?: { cause?: unknown; upstreamStatus?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UpstreamUnavailableError';
    this.upstreamStatus = options?.upstreamStatus;
  }
}

export type NetworkError = ProxyError | UpstreamUnavailableError;

// Failures of the TCP connection this process opens itself: to the upstream, or to the proxy when there is one.
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
const CONNECT_TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);
// Failures once bytes flow: through a tunnel these are the upstream's (the proxy only relays).
const EXCHANGE_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

/**
 * Sorts an error thrown by an undici request made with `createDispatcher(proxy)` into a proxy failure or an
 * unavailable upstream. Returns undefined for anything else (a caller's abort, a closed dispatcher, a bug):
 * those are rethrown as they are. Follows `cause` chains (fetch wraps errors in `TypeError: fetch failed`).
 */
export function classifyNetworkError(err: unknown, proxy: ProxySpec | null): NetworkError | undefined {
  for (let current = err, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    const found = classifyOne(current, proxy);
    if (found) return found;
  }
  return undefined;
}

function classifyOne(err: Error, proxy: ProxySpec | null): NetworkError | undefined {
  if (err instanceof ProxyError || err instanceof UpstreamUnavailableError) return err;
  // Happy-eyeballs connects fail with an AggregateError of the per-address errors.
  const code = errorCode(err instanceof AggregateError ? err.errors[0] : err) ?? errorCode(err);
  if (code === undefined) return undefined;
  if (UNREACHABLE_CODES.has(code)) {
    return proxy ? new ProxyError('unreachable', proxy, `cannot connect (${code})`, { cause: err }) : upstream(err);
  }
  if (CONNECT_TIMEOUT_CODES.has(code)) {
    return proxy ? new ProxyError('timeout', proxy, 'connect timed out', { cause: err }) : upstream(err);
  }
  if (EXCHANGE_CODES.has(code)) return upstream(err);
  return undefined;
}

function upstream(err: Error): UpstreamUnavailableError {
  return new UpstreamUnavailableError(`upstream unavailable: ${err.message}`, { cause: err });
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}
