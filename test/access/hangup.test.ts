import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BOOTSTRAP_KEY, startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { importAccount } from '../accounts/helpers.js';

/** A caller that hangs up lets go of the platform's request with it (issue #9): nothing is left open upstream. */
describeEachStore('Access API: a caller that hangs up', (kind) => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp(kind);
  });
  afterAll(async () => {
    await app?.close();
  });

  /** The platform requests the sandbox has received and not yet finished answering. */
  async function openUpstream(): Promise<number> {
    const res = await fetch(`${app.sandbox.url}/__sandbox/open-requests`);
    return ((await res.json()) as { open: number }).open;
  }

  async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await probe())) {
      if (Date.now() > deadline) throw new Error(`still waiting for ${what} after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** A bare HTTP/1.1 client: the test decides exactly when its socket goes. */
  async function send(path: string, options: { method?: string; body?: string; requestId?: string } = {}): Promise<Socket> {
    const url = new URL(app.url);
    const socket = connect(Number(url.port), url.hostname);
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('connect', resolve));
    const { method = 'GET', body, requestId } = options;
    const extra =
      (requestId ? `x-request-id: ${requestId}\r\n` : '') + (body === undefined ? '' : `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`);
    socket.write(`${method} ${path} HTTP/1.1\r\nhost: ${url.host}\r\nauthorization: Bearer ${BOOTSTRAP_KEY}\r\naccept-encoding: identity\r\n${extra}\r\n${body ?? ''}`);
    return socket;
  }

  type RequestLine = { level: number; msg: string; reqId: string; req: { method: string; url: string }; res: { statusCode: number }; responseTime: number; aborted?: boolean; code?: string };
  /** The request log's lines of one request (every log line of it, to see that no other says it again). */
  const linesOf = (requestId: string) => app.logs.map((line) => JSON.parse(line) as RequestLine).filter((line) => line.reqId === requestId);

  /**
   * A hang-up is one line of the request log, like any request: at info, the request's id, method and URL, how
   * long it ran, `aborted`, and 499 when nothing was answered yet. It stays one after the handler finished.
   */
  async function expectOneAbortedLine(requestId: string, method: string, url: string, statusCode: number): Promise<void> {
    await until('the request line', async () => linesOf(requestId).length > 0, 5_000);
    await new Promise((resolve) => setTimeout(resolve, 300)); // whatever the handler still does, it logs no second line
    const lines = linesOf(requestId);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 30, msg: 'request aborted', aborted: true, req: { method, url }, res: { statusCode } });
    expect(lines[0]!.responseTime).toBeGreaterThan(0);
    if (statusCode === 499) expect(lines[0]!.code).toBe('client_closed_request');
    // And counted in the HTTP metrics under its route and that status (onResponse never runs for it).
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    expect(metrics).toContain(`fangate_http_requests_total{method="${method}",route="/api/:account_id/proxy/*",status="${statusCode}"}`);
  }

  /** Lines FanGate logged at warn or above. */
  const troubles = () => app.logs.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((line) => line.level >= 40);

  // An answer that would take minutes: whatever ends it early, it is not the platform being done.
  const LONG_DOWNLOAD = `media/download?bytes=${256 * 1024 * 1024}&chunk_ms=100`;

  it('in the middle of a streamed answer: the platform request is closed at once, nothing is logged as a failure', async () => {
    const { account } = await importAccount(app, `acc-hangup-body-${kind}@sandbox.test`);
    const before = troubles().length;
    const requestId = `hangup-body-${kind}`;
    const socket = await send(`/api/${account.id}/proxy/${LONG_DOWNLOAD}`, { requestId });
    let received = '';
    await new Promise<void>((resolve) =>
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString('latin1');
        if (received.includes('aaaa')) resolve(); // headers and the first body bytes are here
      }),
    );
    expect(received.startsWith('HTTP/1.1 200')).toBe(true);
    expect(await openUpstream()).toBe(1);

    socket.destroy();
    await until('the platform request to close', async () => (await openUpstream()) === 0);
    expect(troubles().slice(before)).toEqual([]);
    // The answer had begun: the line keeps its status.
    await expectOneAbortedLine(requestId, 'GET', `/api/${account.id}/proxy/${LONG_DOWNLOAD}`, 200);
  });

  it('while the client is not reading (backpressure): the platform request is closed at once', async () => {
    const { account } = await importAccount(app, `acc-hangup-paused-${kind}@sandbox.test`);
    const socket = await send(`/api/${account.id}/proxy/media/download?bytes=${256 * 1024 * 1024}`);
    await new Promise((resolve) => socket.once('data', resolve));
    socket.pause(); // the platform sends as fast as it can; FanGate's buffers fill and the platform waits
    await until('the platform request to start', async () => (await openUpstream()) === 1);

    socket.destroy();
    await until('the platform request to close', async () => (await openUpstream()) === 0);
  });

  it('through fetch, aborted after the first bytes: the platform request is closed at once', async () => {
    const { account } = await importAccount(app, `acc-hangup-fetch-${kind}@sandbox.test`);
    const caller = new AbortController();
    const res = await fetch(`${app.url}/api/${account.id}/proxy/${LONG_DOWNLOAD}`, {
      headers: { authorization: `Bearer ${BOOTSTRAP_KEY}`, 'accept-encoding': 'identity' },
      signal: caller.signal,
    });
    expect(res.status).toBe(200);
    await res.body!.getReader().read();
    expect(await openUpstream()).toBe(1);

    caller.abort();
    await until('the platform request to close', async () => (await openUpstream()) === 0);
  });

  it('before the platform answered: the platform request is dropped, not waited for', async () => {
    // +slow: the platform takes 2 s before it answers anything.
    const { account } = await importAccount(app, `acc-hangup-early-${kind}+slow@sandbox.test`);
    const before = troubles().length;
    const requestId = `hangup-early-${kind}`;
    const socket = await send(`/api/${account.id}/proxy/${LONG_DOWNLOAD}`, { requestId });
    await until('the platform request to arrive', async () => (await openUpstream()) === 1);

    socket.destroy();
    await until('the platform request to close', async () => (await openUpstream()) === 0);
    await expectOneAbortedLine(requestId, 'GET', `/api/${account.id}/proxy/${LONG_DOWNLOAD}`, 499);
    // Counted as dropped by the caller, not as an answer of the platform (which would have been a 200).
    const dropped = /fangate_upstream_request_duration_seconds_count\{platform="onlyfans",outcome="client_closed"\} 1\b/;
    await until('the dropped call in the metrics', async () => dropped.test(await (await fetch(`${app.url}/metrics`)).text()));
    expect(troubles().slice(before)).toEqual([]);
  });

  /** How many proxied calls the metrics count as dropped by their caller. */
  async function droppedCalls(): Promise<number> {
    const text = await (await fetch(`${app.url}/metrics`)).text();
    const found = /fangate_upstream_request_duration_seconds_count\{platform="onlyfans",outcome="client_closed"\} (\d+)/.exec(text);
    return found ? Number(found[1]) : 0;
  }

  it('a POST, before the platform answered: the platform request is dropped too (the request body was read long before)', async () => {
    // +slow: the platform takes 2 s before it answers anything.
    const { account } = await importAccount(app, `acc-hangup-post-${kind}+slow@sandbox.test`);
    const before = troubles().length;
    const dropped = await droppedCalls();
    const requestId = `hangup-post-${kind}`;
    const socket = await send(`/api/${account.id}/proxy/chats/1/messages`, { method: 'POST', body: JSON.stringify({ text: 'never sent' }), requestId });
    await until('the platform request to arrive', async () => (await openUpstream()) === 1);

    socket.destroy();
    await until('the dropped call in the metrics', async () => (await droppedCalls()) === dropped + 1, 5_000);
    await until('the platform request to close', async () => (await openUpstream()) === 0, 5_000);
    expect(troubles().slice(before)).toEqual([]);
    await expectOneAbortedLine(requestId, 'POST', `/api/${account.id}/proxy/chats/1/messages`, 499);
  });

  it('while FanGate reads a slow 403 to tell "logged out" from a refusal: the platform request is closed at once', async () => {
    const { account } = await importAccount(app, `acc-hangup-403-${kind}@sandbox.test`);
    const before = troubles().length;
    const dropped = await droppedCalls();
    // The 403's headers and 1 KiB at once, then 1 KiB a second: the first 64 KiB would take a minute.
    const requestId = `hangup-403-${kind}`;
    const path = `/api/${account.id}/proxy/media/download?status=403&bytes=${1024 * 1024}&chunk_bytes=1024&chunk_ms=1000`;
    const socket = await send(path, { requestId });
    await until('the platform request to arrive', async () => (await openUpstream()) === 1);
    await new Promise((resolve) => setTimeout(resolve, 300)); // FanGate has the headers and is reading the body

    socket.destroy();
    await until('the platform request to close', async () => (await openUpstream()) === 0, 5_000);
    await until('the dropped call in the metrics', async () => (await droppedCalls()) === dropped + 1, 5_000);
    expect(troubles().slice(before)).toEqual([]);
    await expectOneAbortedLine(requestId, 'GET', path, 499);
  });

  it('a request that is answered is still one line, "request completed", and never an aborted one', async () => {
    const { account } = await importAccount(app, `acc-hangup-none-${kind}@sandbox.test`);
    const requestId = `hangup-none-${kind}`;
    const res = await fetch(`${app.url}/api/${account.id}/proxy/users/me`, { headers: { authorization: `Bearer ${BOOTSTRAP_KEY}`, 'x-request-id': requestId } });
    expect(res.status).toBe(200);
    await res.text();
    await until('the request line', async () => linesOf(requestId).length > 0, 5_000);
    await new Promise((resolve) => setTimeout(resolve, 300)); // the connection's close comes after the answer
    const lines = linesOf(requestId);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 30, msg: 'request completed', req: { method: 'GET' }, res: { statusCode: 200 } });
    expect(lines[0]!.aborted).toBeUndefined();
  });
});

/** A caller that stays connected but stops reading is let go after FANGATE_HTTP_IDLE_TIMEOUT_SEC, and the platform request with it. */
describeEachStore('Access API: a caller that stops reading', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind, { env: { FANGATE_HTTP_IDLE_TIMEOUT_SEC: '5' } });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('is closed once no byte has moved for the idle timeout, and nothing stays open upstream', async () => {
    const { account } = await importAccount(app, `acc-stalled-${kind}@sandbox.test`);
    const url = new URL(app.url);
    const socket = connect(Number(url.port), url.hostname);
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(`GET /api/${account.id}/proxy/media/download?bytes=${256 * 1024 * 1024} HTTP/1.1\r\nhost: ${url.host}\r\nauthorization: Bearer ${BOOTSTRAP_KEY}\r\naccept-encoding: identity\r\n\r\n`);
    await new Promise((resolve) => socket.once('data', resolve));
    socket.pause(); // connected, never reading again: every buffer fills and nothing moves
    const closed = new Promise((resolve) => socket.once('close', resolve));
    const open = async () => ((await (await fetch(`${app.sandbox.url}/__sandbox/open-requests`)).json()) as { open: number }).open;
    expect(await open()).toBe(1);
    const started = Date.now();
    const deadline = started + 30_000;
    while ((await open()) !== 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await open()).toBe(0);
    // Not before the idle timeout: a slow reader is no stalled one.
    expect(Date.now() - started).toBeGreaterThanOrEqual(4_000);
    socket.resume();
    await closed;
  }, 60_000);
});
