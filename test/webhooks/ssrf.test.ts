import { afterAll, beforeAll, expect, it } from 'vitest';
import { classifyAddress, type ResolvedAddress, systemResolver } from '../../src/net/address-guard.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { describeEachStore } from '../support/stores.js';

/**
 * SSRF guard (DESIGN 9): webhook URLs reaching private, loopback, link-local, CGNAT or metadata addresses are
 * refused when created and at each delivery. Nothing here connects anywhere: names resolve through a stub
 * (or to loopback), and refused addresses are never dialled.
 */

const PUBLIC = '93.184.216.34';

describeEachStore('webhooks: SSRF guard', (kind) => {
  let app: TestApp;
  let rebindCalls = 0;
  const resolver = async (host: string): Promise<ResolvedAddress[]> => {
    if (host === 'public.test') return [{ address: PUBLIC, family: 4 }];
    if (host === 'loopback.test') return [{ address: '127.0.0.1', family: 4 }];
    if (host === 'mixed.test') return [{ address: PUBLIC, family: 4 }, { address: '10.1.2.3', family: 4 }];
    if (host === 'metadata.test') return [{ address: 'fd00:ec2::254', family: 6 }];
    // Public when the endpoint is created, loopback when it is delivered to.
    if (host === 'rebind.test') return [{ address: rebindCalls++ === 0 ? PUBLIC : '127.0.0.1', family: 4 }];
    return systemResolver(host);
  };

  beforeAll(async () => {
    app = await startTestApp(kind, { webhooks: { resolver, retryScheduleMs: [60_000], pollMs: 100 } });
  });
  afterAll(async () => {
    await app?.close();
  });

  const refused = [
    'http://127.0.0.1/hook',
    'http://127.9.9.9:8080/hook',
    'http://localhost:8080/hook',
    'http://[::1]/hook',
    'http://169.254.169.254/latest/meta-data/',
    'http://10.0.0.1/hook',
    'http://172.16.5.4/hook',
    'http://192.168.1.1/hook',
    'http://100.64.0.1/hook',
    'http://0.0.0.0/hook',
    'http://[::ffff:127.0.0.1]/hook',
    'http://[::ffff:a9fe:a9fe]/hook',
    'http://[fd00:ec2::254]/hook',
    'http://[fe80::1]/hook',
    'http://loopback.test/hook',
    'https://mixed.test/hook',
    'https://metadata.test/hook',
    'http://2130706433/hook',
    'ftp://public.test/hook',
    'file:///etc/passwd',
    'not a url',
  ];

  it.each(refused)('refuses %s with 422 naming endpoint_url', async (url) => {
    const res = await app.api('/api/webhooks', { method: 'POST', body: { endpoint_url: url } });
    expect(res.status, res.text).toBe(422);
    expect(res.body.code).toBe('validation_failed');
    expect(res.body.errors).toEqual([{ field: 'endpoint_url', message: expect.any(String) }]);
  });

  it('accepts a host that resolves to public addresses only, and checks a changed URL again', async () => {
    const created = await app.api('/api/webhooks', { method: 'POST', body: { endpoint_url: 'https://public.test/hook', enabled: false } });
    expect(created.status, created.text).toBe(201);
    const moved = await app.api(`/api/webhooks/${created.body.id}`, { method: 'PUT', body: { endpoint_url: 'http://169.254.169.254/' } });
    expect(moved.status).toBe(422);
    expect(moved.body.errors[0].field).toBe('endpoint_url');
    expect((await app.api(`/api/webhooks/${created.body.id}`)).body.endpoint_url).toBe('https://public.test/hook');
  });

  it('checks the address again at delivery: a name rebound to loopback is refused, not dialled', async () => {
    const created = await app.api('/api/webhooks', { method: 'POST', body: { endpoint_url: 'http://rebind.test:1/hook' } });
    expect(created.status, created.text).toBe(201);
    const sent = await app.api(`/api/webhooks/${created.body.id}/test`, { method: 'POST' });
    expect(sent.status, sent.text).toBe(200);
    expect(sent.body).toMatchObject({ event: 'webhooks.test', status: 'pending', attempts: 1, last_response_status: null });
    const detail = await app.api(`/api/webhooks/${created.body.id}/deliveries/${sent.body.id}`);
    expect(detail.body.tries).toEqual([expect.objectContaining({ response_status: null, error: expect.stringContaining('127.0.0.1') })]);
    expect(detail.body.tries[0].error).toContain('not allowed');
    await app.api(`/api/webhooks/${created.body.id}`, { method: 'DELETE' });
  });
});

it('classifies addresses', () => {
  const cases: Record<string, string> = {
    '8.8.8.8': 'public',
    '93.184.216.34': 'public',
    '127.0.0.1': 'loopback',
    '10.20.30.40': 'private',
    '172.31.255.255': 'private',
    '172.32.0.1': 'public',
    '192.168.0.1': 'private',
    '100.64.0.1': 'cgnat',
    '100.127.255.255': 'cgnat',
    '100.128.0.1': 'public',
    '169.254.169.254': 'metadata',
    '169.254.1.1': 'link_local',
    '0.0.0.0': 'unspecified',
    '224.0.0.1': 'multicast',
    '255.255.255.255': 'reserved',
    '::': 'unspecified',
    '::1': 'loopback',
    'fe80::1': 'link_local',
    'fd00:ec2::254': 'metadata',
    'fd12:3456::1': 'unique_local',
    'fc00::1': 'unique_local',
    '::ffff:127.0.0.1': 'loopback',
    '::ffff:10.0.0.1': 'private',
    '::ffff:8.8.8.8': 'public',
    '64:ff9b::a9fe:a9fe': 'metadata',
    '2002:7f00:1::': 'loopback',
    '2001:db8::1': 'documentation',
    '2606:4700:4700::1111': 'public',
    'ff02::1': 'multicast',
  };
  for (const [address, expected] of Object.entries(cases)) expect([address, classifyAddress(address)]).toEqual([address, expected]);
});
