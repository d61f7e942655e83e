import { connect } from 'node:net';
import { expect, it } from 'vitest';
import { BOOTSTRAP_KEY, startTestApp, type TestApp } from '../support/app.js';
import { importAccount } from '../accounts/helpers.js';

// HTTP-level behaviour of one process: the embedded store is enough. The grace before a stop cuts connections
// is set far beyond the test's limit: a stop that returns did not need the cut.
const NO_CUT = { closeGraceMs: 10 * 60_000 };

/** stop(), or a failure naming what still held it after a generous wait. */
async function stopsWithoutCut(app: TestApp) {
  const outcome = await Promise.race([
    app.fangate.stop().then(() => 'stopped'),
    new Promise((resolve) => setTimeout(() => resolve('still stopping after 30 s'), 30_000)),
  ]);
  expect(outcome).toBe('stopped');
  expect(app.logs.filter((line) => line.includes('cutting the HTTP connections'))).toEqual([]);
}

it('stops without cutting connections after a caller hung up in the middle of a streamed answer', async () => {
  const app = await startTestApp('pglite', NO_CUT);
  try {
    const { account } = await importAccount(app, 'acc-hangup@sandbox.test');
    const caller = new AbortController();
    // Minutes of streaming on the platform's side.
    const res = await fetch(`${app.url}/api/${account.id}/proxy/media/download?bytes=${256 * 1024 * 1024}&chunk_ms=100`, {
      headers: { authorization: `Bearer ${BOOTSTRAP_KEY}`, 'accept-encoding': 'identity' },
      signal: caller.signal,
    });
    await res.body!.getReader().read();
    caller.abort();
    await stopsWithoutCut(app);
  } finally {
    app.fangate.http.server.closeAllConnections(); // a failed test still ends
    await app.close();
  }
}, 60_000);

it('stops without cutting connections while a client holds a connection it never sent a request on', async () => {
  const app = await startTestApp('pglite', NO_CUT);
  try {
    // What fetch's pool and browsers open ahead of need.
    const url = new URL(app.url);
    const spare = connect(Number(url.port), url.hostname);
    spare.on('error', () => undefined);
    await new Promise((resolve) => spare.once('connect', resolve));
    const closed = new Promise((resolve) => spare.once('close', resolve));
    await stopsWithoutCut(app);
    await closed;
  } finally {
    app.fangate.http.server.closeAllConnections(); // a failed test still ends
    await app.close();
  }
}, 60_000);
