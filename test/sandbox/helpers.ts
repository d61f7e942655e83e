import { request, type Dispatcher } from 'undici';
import { startSandbox, type RunningSandbox } from '../../src/sandbox/index.js';

/** Shared helpers: the tests talk to a real sandbox over HTTP with real cookies and headers. */

export const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36';
export const OTHER_UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148';
export const XBC = '3f9c2b7a1e6d4c8b9a0f1e2d3c4b5a6978685746';

/** A clock the tests move by hand. */
export class ManualClock {
  constructor(public time = Date.UTC(2025, 6, 1, 12, 0, 0)) {}
  readonly now = (): number => this.time;
  advance(ms: number): void {
    this.time += ms;
  }
}

export async function startTestSandbox(): Promise<{ sandbox: RunningSandbox; clock: ManualClock }> {
  const clock = new ManualClock();
  return { sandbox: await startSandbox({ clock: clock.now }), clock };
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** Parsed JSON (undefined for other content types); `any` because tests assert on many shapes. */
  body: any;
  setCookies: string[];
}

export interface CallOptions {
  method?: Dispatcher.HttpMethod;
  headers?: Record<string, string>;
  body?: unknown;
  /** Raw body, sent as is (for malformed-input tests). */
  raw?: string;
  dispatcher?: Dispatcher;
}

export async function call(url: string, options: CallOptions = {}): Promise<Reply> {
  const hasBody = options.body !== undefined || options.raw !== undefined;
  const response = await request(url, {
    method: options.method ?? (hasBody ? 'POST' : 'GET'),
    headers: { ...(hasBody ? { 'content-type': 'application/json' } : {}), ...options.headers },
    body: options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body)),
    ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
  });
  const text = await response.body.text();
  const type = String(response.headers['content-type'] ?? '');
  const setCookie = response.headers['set-cookie'];
  return {
    status: response.statusCode,
    headers: response.headers,
    text,
    body: type.includes('json') ? JSON.parse(text) : undefined,
    setCookies: setCookie === undefined ? [] : Array.isArray(setCookie) ? setCookie : [setCookie],
  };
}

/** `name=value` pairs of Set-Cookie headers. */
export function cookiesOf(setCookies: string[]): Record<string, string> {
  return Object.fromEntries(
    setCookies.map((line) => {
      const pair = line.split(';')[0]!;
      const eq = pair.indexOf('=');
      return [pair.slice(0, eq), pair.slice(eq + 1)];
    }),
  );
}

/** What a browser holds after logging in on the OnlyFans side. */
export interface OfSession {
  cookies: Record<string, string>;
  xbc: string;
  userAgent: string;
}

export function ofHeaders(session: OfSession, extra: Record<string, string> = {}): Record<string, string> {
  return {
    cookie: Object.entries(session.cookies)
      .map(([name, value]) => `${name}=${value}`)
      .join('; '),
    'x-bc': session.xbc,
    'user-id': session.cookies.auth_id ?? '',
    'user-agent': session.userAgent,
    ...extra,
  };
}

export class OnlyFans {
  constructor(
    readonly baseUrl: string,
    readonly userAgent = UA,
    readonly dispatcher?: Dispatcher,
  ) {}

  url(path: string): string {
    return `${this.baseUrl}/api2/v2${path}`;
  }

  login(email: string, password = 'password'): Promise<Reply> {
    return this.post('/users/login', { email, password }, { 'x-bc': XBC });
  }

  post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
    return call(this.url(path), { body, headers: { 'user-agent': this.userAgent, ...headers }, ...this.via() });
  }

  get(path: string, session: OfSession, headers: Record<string, string> = {}): Promise<Reply> {
    return call(this.url(path), { headers: ofHeaders(session, headers), ...this.via() });
  }

  /** Logs in and completes a challenge-free login. */
  async session(email: string): Promise<OfSession> {
    const reply = await this.login(email);
    if (reply.status !== 200 || reply.body.status !== 'authenticated') {
      throw new Error(`login of ${email} did not authenticate: ${reply.status} ${reply.text}`);
    }
    return this.sessionOf(reply);
  }

  sessionOf(reply: Reply): OfSession {
    return { cookies: cookiesOf(reply.setCookies), xbc: reply.body.x_bc, userAgent: this.userAgent };
  }

  private via(): { dispatcher?: Dispatcher } {
    return this.dispatcher ? { dispatcher: this.dispatcher } : {};
  }
}
