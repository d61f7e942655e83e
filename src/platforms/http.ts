import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import type { Dispatcher } from 'undici';
import { ProxyError, UpstreamUnavailableError, classifyNetworkError } from '../net/errors.js';
import type { DriverContext, StepResult } from './types.js';

/**
 * Small helpers shared by the platform drivers: one HTTP exchange through the account's dispatcher with
 * network errors classified, cookie strings, and header hygiene for the Access API.
 */

export interface Exchange {
  status: number;
  /** Lower-case names; repeated headers other than set-cookie joined with ", ". */
  headers: Record<string, string>;
  /** Every Set-Cookie line. */
  setCookies: string[];
  body: Buffer;
}

export interface ExchangeOptions {
  method: Dispatcher.HttpMethod;
  headers: Record<string, string>;
  body?: string | Buffer;
}

/**
 * One request through `ctx.dispatcher`, body read in full. Network trouble (connect, tunnel, timeouts, a reset
 * while reading) is thrown as `ProxyError` / `UpstreamUnavailableError`; anything else (an abort by
 * `ctx.signal`, a closed dispatcher) is rethrown as it is. HTTP statuses are the caller's business.
 */
export async function exchange(ctx: DriverContext, url: string, options: ExchangeOptions): Promise<Exchange> {
  const streamed = await exchangeStream(ctx, url, options);
  try {
    return { ...streamed, body: await buffer(streamed.body) };
  } catch (err) {
    throw networkError(ctx, err);
  }
}

/** An exchange whose body is not read: the caller streams it on (and must consume or destroy it). */
export interface StreamedExchange extends Omit<Exchange, 'body'> {
  body: Readable;
}

/**
 * Like `exchange`, but answers as soon as the headers arrived, with the body as a stream (backpressure
 * reaches the platform's socket). Network trouble before the headers is thrown typed; later trouble is
 * an error event on the stream.
 */
export async function exchangeStream(ctx: DriverContext, url: string, options: ExchangeOptions): Promise<StreamedExchange> {
  try {
    // The dispatcher's own request(): what undici's top-level request() calls, without loading undici here.
    const target = new URL(url);
    const response = await ctx.dispatcher.request({
      origin: target.origin,
      path: `${target.pathname}${target.search}`,
      method: options.method,
      headers: options.headers,
      ...(options.body === undefined ? {} : { body: options.body }),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
    const { headers, setCookies } = splitHeaders(response.headers);
    return { status: response.statusCode, headers, setCookies, body: response.body };
  } catch (err) {
    throw networkError(ctx, err);
  }
}

function splitHeaders(raw: Record<string, string | string[] | undefined>): { headers: Record<string, string>; setCookies: string[] } {
  const headers: Record<string, string> = {};
  const setCookies: string[] = [];
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    const key = name.toLowerCase();
    if (key === 'set-cookie') setCookies.push(...(Array.isArray(value) ? value : [value]));
    else headers[key] = Array.isArray(value) ? value.join(', ') : value;
  }
  return { headers, setCookies };
}

/** What a failed undici call should be thrown as. */
export function networkError(ctx: DriverContext, err: unknown): unknown {
  // The HTTP tunnel already throws typed ProxyErrors, with its own spec: keep them as they are.
  if (err instanceof ProxyError) return err;
  return classifyNetworkError(err, ctx.proxy ?? null) ?? err;
}

/** The platform answered 5xx (or a shape no driver can read): the service may retry or fail over. */
export function upstreamStatusError(platform: string, what: string, status: number): UpstreamUnavailableError {
  return new UpstreamUnavailableError(`${platform} answered ${status} to ${what}`, { upstreamStatus: status });
}

/** Parses a JSON body; undefined when it is not JSON (a CDN's HTML error page, an empty body). */
export function parseJson(exchangeResult: Exchange): unknown {
  if (exchangeResult.body.length === 0) return undefined;
  try {
    return JSON.parse(exchangeResult.body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `value` as a string id (platforms send ids as numbers or strings), or undefined. */
export function idString(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'bigint') return value.toString();
  return undefined;
}

export function stringOr<T>(value: unknown, fallback: T): string | T {
  return typeof value === 'string' ? value : fallback;
}

/** Same origin only: a path like `//evil.example/x` or `http://…` must never leave the platform. */
export function platformUrl(baseUrl: string, path: string): string {
  if (!path.startsWith('/') || path.startsWith('//') || /[\r\n]/.test(path)) {
    throw new TypeError('platform path must be absolute on the platform (start with a single "/")');
  }
  const base = new URL(baseUrl);
  // A base with a path (a platform mounted under a prefix) keeps it.
  const url = new URL(`${base.origin}${base.pathname.replace(/\/+$/, '')}${path}`);
  if (url.origin !== base.origin) throw new TypeError('platform path leaves the platform origin');
  return url.toString();
}

// ---------------------------------------------------------------------------------------------------------
// Cookies

/** `a=b; c=d` → ordered name/value pairs (later duplicates win). */
export function parseCookieString(cookies: string): Map<string, string> {
  const jar = new Map<string, string>();
  for (const pair of cookies.split(';')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const name = pair.slice(0, eq).trim();
    if (name) jar.set(name, pair.slice(eq + 1).trim());
  }
  return jar;
}

export function serializeCookies(jar: Map<string, string>): string {
  return [...jar].map(([name, value]) => `${name}=${value}`).join('; ');
}

export interface SetCookie {
  name: string;
  value: string;
  /** Max-Age ≤ 0 or an Expires in the past: the platform deletes the cookie. */
  cleared: boolean;
}

export function parseSetCookie(line: string): SetCookie | undefined {
  const [pair = '', ...attributes] = line.split(';');
  const eq = pair.indexOf('=');
  if (eq <= 0) return undefined;
  const name = pair.slice(0, eq).trim();
  const value = pair.slice(eq + 1).trim();
  let cleared = false;
  for (const attribute of attributes) {
    const [key = '', ...rest] = attribute.split('=');
    const attrValue = rest.join('=').trim();
    const attrName = key.trim().toLowerCase();
    if (attrName === 'max-age' && Number(attrValue) <= 0) cleared = true;
    if (attrName === 'expires') {
      const at = Date.parse(attrValue);
      if (Number.isFinite(at) && at <= Date.now()) cleared = true;
    }
  }
  return name ? { name, value, cleared } : undefined;
}

/** The Set-Cookie lines as name → value (cookies being cleared left out). */
export function setCookieValues(lines: string[]): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of lines) {
    const cookie = parseSetCookie(line);
    if (cookie && !cookie.cleared && cookie.value !== '') values.set(cookie.name, cookie.value);
  }
  return values;
}

/**
 * The cookie string with the platform's new values of `names` applied (other cookies of the string kept,
 * in place), or undefined when nothing changed. Clearing cookies (logout) are not applied: a deleted session
 * is found out by the next validation, not stored.
 */
export function rotateCookies(cookies: string, lines: string[], names: readonly string[]): string | undefined {
  const updates = setCookieValues(lines);
  const jar = parseCookieString(cookies);
  let changed = false;
  for (const name of names) {
    const value = updates.get(name);
    if (value !== undefined && jar.get(name) !== value) {
      jar.set(name, value);
      changed = true;
    }
  }
  return changed ? serializeCookies(jar) : undefined;
}

/** A stable 32-hex device cookie derived from the account's device id: the same browser across re-logins. */
export function deviceCookie(deviceId: string): string {
  return createHash('sha256').update(`fp:${deviceId}`).digest('hex').slice(0, 32);
}

// ---------------------------------------------------------------------------------------------------------
// Headers of Access API requests

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Headers a caller may not set on a forwarded request: the session's own (the driver sets them), framing
 * (undici sets it), and anything that would tell the platform about FanGate's client or its address.
 */
const REQUEST_DENIED = new Set([
  ...HOP_BY_HOP,
  'host',
  'content-length',
  'cookie',
  'authorization',
  'user-agent',
  'x-bc',
  'user-id',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-real-ip',
  'via',
  'expect',
]);

export function forwardableRequestHeaders(headers: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    const key = name.toLowerCase();
    if (REQUEST_DENIED.has(key) || key.startsWith('proxy-') || typeof value !== 'string') continue;
    out[key] = value;
  }
  return out;
}

/** Response headers for the Access API caller: no hop-by-hop headers (nor those `connection` names), no cookies. */
export function forwardableResponseHeaders(headers: Record<string, string>): Record<string, string> {
  const named = new Set(
    (headers.connection ?? '')
      .split(',')
      .map((name) => name.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (HOP_BY_HOP.has(name) || named.has(name) || name === 'set-cookie' || name === 'set-cookie2') continue;
    out[name] = value;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Login refusals

/** A platform's error body, reduced to what the drivers read. */
export interface PlatformErrorBody {
  reason: string;
  message: string;
  /** OnlyFans `challenge_mismatch`: the step the login is really on. */
  challenge?: string;
}

/**
 * How a login step ends when the platform refuses it; both platforms use the same reasons. A
 * throttle or an answer no rule covers throws `UpstreamUnavailableError`: the service retries.
 * `state` is the login in progress (absent for the first call: no code was sent yet).
 */
export function loginRefusal(platform: string, what: string, status: number, error: PlatformErrorBody | undefined, state: unknown): StepResult {
  if (status === 429 && error?.reason !== 'too_many_attempts') throw upstreamStatusError(platform, what, status);
  if (status >= 400 && status < 500 && error) {
    switch (error.reason) {
      case 'invalid_credentials':
        return { type: 'failure', code: 'invalid_credentials', message: error.message };
      case 'account_locked':
        return { type: 'failure', code: 'account_locked', message: error.message };
      case 'wrong_code':
        if (state) return { type: 'wrong_code', resume: state };
        break;
      case 'too_many_attempts':
        // The platform dropped the login after too many wrong codes.
        return { type: 'failure', code: '2fa_failed', message: error.message };
      case 'login_token_invalid':
      case 'user_agent_mismatch':
        // The platform no longer knows this login (too old, finished, dropped), or will not continue it
        // from this browser: only a new login helps.
        return { type: 'failure', code: 'session_invalid', message: error.message };
      case 'bad_request':
        // Only the first call carries creator input (an email the platform cannot even parse).
        if (!state) return { type: 'failure', code: 'invalid_credentials', message: error.message };
        break;
    }
  }
  throw new UpstreamUnavailableError(`${platform}: unexpected answer ${status}${error ? ` ${error.reason}` : ''} to ${what}`);
}
