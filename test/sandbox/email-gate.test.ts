import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ProxyAgent, Socks5ProxyAgent } from 'undici';
import { SANDBOX_EMAIL_CODE, type RunningSandbox } from '../../src/sandbox/index.js';
import { startHttpProxy, startSocksProxy, type TestProxy } from '../support/proxies.js';
import { OnlyFans, UA, call, startTestSandbox } from './helpers.js';

/** The address-based email device check, exercised through real proxies bound to 127.0.0.2. */

let sandbox: RunningSandbox;
let httpProxy: TestProxy;
let socksProxy: TestProxy;
let direct: OnlyFans;
let viaHttp: OnlyFans;
let viaSocks: OnlyFans;
const agents: Array<ProxyAgent | Socks5ProxyAgent> = [];

beforeAll(async () => {
  ({ sandbox } = await startTestSandbox());
  httpProxy = await startHttpProxy({ localAddress: '127.0.0.2', auth: { username: 'u', password: 'p' } });
  socksProxy = await startSocksProxy({ localAddress: '127.0.0.2', auth: { username: 'u', password: 'p' } });
  const httpAgent = new ProxyAgent({ uri: httpProxy.url, token: `Basic ${Buffer.from('u:p').toString('base64')}` });
  const socksAgent = new Socks5ProxyAgent(socksProxy.url, { username: 'u', password: 'p' });
  agents.push(httpAgent, socksAgent);
  direct = new OnlyFans(sandbox.url);
  viaHttp = new OnlyFans(sandbox.url, UA, httpAgent);
  viaSocks = new OnlyFans(sandbox.url, UA, socksAgent);
});
afterAll(async () => {
  await Promise.all(agents.map((agent) => agent.close()));
  await Promise.all([httpProxy.close(), socksProxy.close(), sandbox.close()]);
});
beforeEach(() => sandbox.reset());

/** Logs in and answers the email check when asked; returns whether it was asked. */
async function loginAnsweringEmail(client: OnlyFans, email: string): Promise<boolean> {
  const start = await client.login(email);
  expect(start.status).toBe(200);
  if (start.body.status === 'authenticated') return false;
  expect(start.body.challenge.type).toBe('email');
  const token = start.body.login_token;
  expect((await client.post('/users/login/email/send', { login_token: token })).status).toBe(200);
  const done = await client.post('/users/login/otp', { login_token: token, code: SANDBOX_EMAIL_CODE });
  expect(done.body.status).toBe('authenticated');
  return true;
}

describe('email device check by remote address', () => {
  it('asks again when the same user logs in through a proxy with another outgoing address', async () => {
    const email = 'jane+email@sandbox.test';
    expect(await loginAnsweringEmail(direct, email)).toBe(true); // first login ever: a new address
    expect(await loginAnsweringEmail(direct, email)).toBe(false); // 127.0.0.1 is trusted now
    const before = httpProxy.connections;
    expect(await loginAnsweringEmail(viaHttp, email)).toBe(true); // 127.0.0.2 is new
    expect(httpProxy.connections).toBeGreaterThan(before);
    expect(await loginAnsweringEmail(viaHttp, email)).toBe(false);
    expect(await loginAnsweringEmail(direct, email)).toBe(false);

    const log = await call(`${sandbox.url}/__sandbox/requests?email=${encodeURIComponent(email)}`);
    expect(log.status).toBe(200);
    const addresses = log.body.data.map((entry: { remote_address: string }) => entry.remote_address);
    expect(new Set(addresses)).toEqual(new Set(['127.0.0.1', '127.0.0.2']));
    expect(log.body.data[0]).toEqual({
      platform: 'onlyfans',
      method: 'POST',
      path: '/api2/v2/users/login',
      remote_address: '127.0.0.1',
      user_agent: UA,
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      status: 200,
      has_body: true,
      body_bytes: expect.any(Number),
      content_type: 'application/json',
      rotated: false,
    });
  });

  it('sees the SOCKS5 proxy outgoing address too', async () => {
    const email = 'john+email@sandbox.test';
    expect(await loginAnsweringEmail(viaSocks, email)).toBe(true);
    expect(await loginAnsweringEmail(viaSocks, email)).toBe(false);
    expect(await loginAnsweringEmail(direct, email)).toBe(true);
    const log = await call(`${sandbox.url}/__sandbox/requests?email=${encodeURIComponent(email)}&platform=onlyfans`);
    expect(log.body.data[0].remote_address).toBe('127.0.0.2');
  });

  it('does not check users without +email, whatever the address', async () => {
    expect((await viaHttp.login('jane@sandbox.test')).body.status).toBe('authenticated');
    expect((await direct.login('jane@sandbox.test')).body.status).toBe('authenticated');
  });

  it('keeps a session usable through a proxy (the session is bound to the user agent, not the address)', async () => {
    const session = await direct.session('jane@sandbox.test');
    expect((await viaHttp.get('/users/me', session)).status).toBe(200);
  });
});
