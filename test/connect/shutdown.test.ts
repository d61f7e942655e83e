import { afterAll, beforeAll, expect, it } from 'vitest';
import { BOOTSTRAP_KEY, startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';

describeEachStore('graceful stop with clients waiting', (kind) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp(kind);
  });
  afterAll(() => app?.close());

  it('ends open event streams and long-polls instead of waiting for them', async () => {
    const start = await app.api('/api/authenticate', { method: 'POST', body: { email: 'stop1+sms@sandbox.test', password: 'password' } });
    expect((await app.api(`/api/authenticate/${start.body.attempt_id}?wait=10&state=pending`)).body.state).toBe('needs_otp');

    const stream = await fetch(`${app.url}/api/authenticate/${start.body.attempt_id}/events`, { headers: { authorization: `Bearer ${BOOTSTRAP_KEY}` } });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain('"state":"needs_otp"');
    const poll = app.api(`/api/authenticate/${start.body.attempt_id}?wait=30&state=needs_otp`);
    await new Promise((resolve) => setTimeout(resolve, 300)); // both are now waiting

    const stopping = Date.now();
    await app.fangate.stop();
    expect(Date.now() - stopping).toBeLessThan(10_000); // not the 30 s the long-poll asked for
    const polled = await poll;
    expect(polled.status).toBe(200);
    expect(polled.body.state).toBe('needs_otp');
    let ended = false;
    for (let i = 0; i < 10 && !ended; i++) ended = (await reader.read()).done;
    expect(ended).toBe(true);
  });
});
