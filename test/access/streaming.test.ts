import { gunzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decryptSession } from '../../src/accounts/repository.js';
import { BOOTSTRAP_KEY, startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';
import { accountRow, importAccount } from '../accounts/helpers.js';

/** The Access API streams the platform's answer, and answers 504 when the platform is too slow (DESIGN 10). */
describeEachStore('Access API: streaming', (kind) => {
  let app: TestApp;

  beforeAll(async () => {
    // An upstream limit shorter than the streamed answer: it covers the platform's first answer only.
    app = await startTestApp(kind, { access: { timeoutMs: 2_000 } });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('streams a large answer: the first bytes arrive long before the platform finished, all bytes arrive, no cookies', async () => {
    const email = 'acc-stream+rotate@sandbox.test';
    const { account } = await importAccount(app, email);
    const before = decryptSession(app.fangate.vault, (await accountRow(app, account.id))!)!.cookies;
    const bytes = 48 * 64 * 1024; // 48 chunks, 60 ms apart: about 2.8 s on the platform's side
    const started = Date.now();
    const res = await fetch(`${app.url}/api/${account.id}/proxy/media/download?bytes=${bytes}&chunk_ms=60`, {
      // Uncompressed: a gzip stream of this (very compressible) body would hold its bytes back until the end.
      headers: { authorization: `Bearer ${BOOTSTRAP_KEY}`, 'accept-encoding': 'identity' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('set-cookie')).toBeNull();
    expect(res.headers.get('x-fangate-relayed')).toBe('true');
    const reader = res.body!.getReader();
    let received = 0;
    let firstAt = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (received === 0) firstAt = Date.now() - started;
      received += value.length;
    }
    const totalMs = Date.now() - started;
    expect(received).toBe(bytes);
    expect(totalMs).toBeGreaterThan(2_500);
    // Buffered, the first byte would come after the last chunk left the platform.
    expect(firstAt).toBeLessThan(totalMs - 1_500);
    // Longer than the upstream limit: the limit covers the platform's first answer, not the stream.
    expect(totalMs).toBeGreaterThan(2_000);
    // The platform rotated the session on this answer (+rotate): stored back.
    const after = decryptSession(app.fangate.vault, (await accountRow(app, account.id))!)!.cookies;
    expect(after).not.toBe(before);
    expect((await app.api(`/api/${account.id}/proxy/users/me`)).status).toBe(200);
  });

  it('relays a compressed answer with its content-encoding, byte for byte', async () => {
    const { account } = await importAccount(app, 'acc-gzip@sandbox.test');
    const bytes = 5 * 64 * 1024;
    // undici's request does not decompress: the test sees exactly what a client receives.
    const res = await request(`${app.url}/api/${account.id}/proxy/media/download?bytes=${bytes}`, {
      headers: { authorization: `Bearer ${BOOTSTRAP_KEY}`, 'accept-encoding': 'gzip' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-encoding']).toBe('gzip');
    const body = Buffer.from(await res.body.arrayBuffer());
    expect(body.length).toBeLessThan(bytes);
    expect(gunzipSync(body).equals(Buffer.alloc(bytes, 0x61))).toBe(true);
  });
});

describeEachStore('Access API: time limit', (kind) => {
  let app: TestApp;

  beforeAll(async () => {
    // A short upstream limit, so that `+slow` (2 s per call) times out.
    app = await startTestApp(kind, { access: { timeoutMs: 1_000 } });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('a platform slower than the limit answers 504 upstream_timeout', async () => {
    const email = 'acc-timeout+slow@sandbox.test';
    const { account } = await importAccount(app, email);
    const started = Date.now();
    const res = await app.api(`/api/${account.id}/proxy/users/me`);
    expect(res.status, res.text).toBe(504);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ code: 'upstream_timeout', status: 504, retryable: true });
    expect(Date.now() - started).toBeLessThan(1_900);
  });
});
