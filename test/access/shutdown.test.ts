import { expect, it } from 'vitest';
import { BOOTSTRAP_KEY, startTestApp } from '../support/app.js';
import { importAccount } from '../accounts/helpers.js';

// HTTP-level behaviour of one process: the embedded store is enough.
it('stops within its grace period after a caller hung up in the middle of a streamed answer', async () => {
  const app = await startTestApp('pglite');
  const { account } = await importAccount(app, 'acc-hangup@sandbox.test');
  const caller = new AbortController();
  // About 10 s of streaming on the platform's side.
  const res = await fetch(`${app.url}/api/${account.id}/proxy/media/download?bytes=${48 * 64 * 1024}&chunk_ms=200`, {
    headers: { authorization: `Bearer ${BOOTSTRAP_KEY}`, 'accept-encoding': 'identity' },
    signal: caller.signal,
  });
  await res.body!.getReader().read();
  caller.abort();
  await new Promise((resolve) => setTimeout(resolve, 300)); // the hang-up reaches the server

  const started = Date.now();
  const outcome = await Promise.race([
    app.fangate.stop().then(() => 'stopped'),
    new Promise((resolve) => setTimeout(() => resolve('still stopping after 15 s'), 15_000)),
  ]);
  expect(outcome).toBe('stopped');
  expect(Date.now() - started).toBeLessThan(15_000);
  await app.close();
}, 60_000);
