import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { connectAccount } from '../accounts/helpers.js';
import { createEndpoint, startReceiver, type Receiver, waitForDeliveries } from '../webhooks/helpers.js';

/**
 * docs/grafana-dashboard.json is importable (Grafana's export format) and queries only metrics FanGate
 * exports at /metrics, with label names those metrics carry: a renamed metric breaks this test, not the
 * operator's dashboard.
 */
const dashboard = JSON.parse(readFileSync(new URL('../../docs/grafana-dashboard.json', import.meta.url), 'utf8'));
const HISTOGRAM_SUFFIX = /_(bucket|sum|count)$/;

/** Every panel's PromQL expression. */
const expressions = (): string[] => dashboard.panels.flatMap((p: any) => (p.targets ?? []).map((t: any) => t.expr as string));

describe('docs/grafana-dashboard.json', () => {
  let app: TestApp;
  let receiver: Receiver;
  let exposition = '';

  beforeAll(async () => {
    app = await startTestApp('pglite', { env: { FANGATE_ALLOW_PRIVATE_WEBHOOKS: 'true' } });
    receiver = await startReceiver();
    // A connect delivered to a webhook receiver and a health check: every series the dashboard reads has samples.
    const endpoint = await createEndpoint(app, { endpoint_url: receiver.url });
    const { account } = await connectAccount(app, 'dashboard@sandbox.test');
    expect((await app.api(`/api/accounts/${account.id}/check`, { method: 'POST' })).status).toBe(200);
    await waitForDeliveries(app, endpoint.id, (data) => data.some((d) => d.status === 'succeeded'));
    const res = await fetch(`${app.url}/metrics`);
    expect(res.status).toBe(200);
    exposition = await res.text();
  });
  afterAll(async () => {
    await app?.close();
    await receiver?.close();
  });

  it('is a Grafana dashboard with a Prometheus data source input and panels that each query something', () => {
    expect(dashboard.title).toBe('FanGate');
    expect(dashboard.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    expect(dashboard.__inputs).toEqual([expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' })]);
    const queryPanels = dashboard.panels.filter((p: any) => p.type !== 'row');
    expect(queryPanels.length).toBeGreaterThanOrEqual(10);
    const ids = dashboard.panels.map((p: any) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of queryPanels) {
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      expect(panel.datasource.uid).toBe('${DS_PROMETHEUS}');
    }
  });

  it('queries every metric of DESIGN 11', () => {
    const all = expressions().join('\n');
    for (const metric of [
      'fangate_attempts_total', 'fangate_attempt_duration_seconds', 'fangate_attempts_in_state', 'fangate_accounts',
      'fangate_health_checks_total', 'fangate_upstream_request_duration_seconds', 'fangate_webhook_deliveries_total',
      'fangate_webhook_delivery_lag_seconds', 'fangate_jobs_queued', 'fangate_http_requests_total', 'fangate_http_request_duration_seconds',
    ]) {
      expect(all, metric).toMatch(new RegExp(`\\b${metric}(_bucket)?\\{`));
    }
  });

  it('queries only metrics /metrics exports, by labels they have', () => {
    const types = new Map<string, string>();
    for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1]!, m[2]!);
    // Label names seen on each metric's samples.
    const labels = new Map<string, Set<string>>();
    for (const m of exposition.matchAll(/^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? /gm)) {
      const base = m[1]!.replace(HISTOGRAM_SUFFIX, '');
      const set = labels.get(base) ?? new Set(['instance', 'job', 'le']);
      for (const l of (m[2] ?? '').matchAll(/(\w+)="/g)) set.add(l[1]!);
      labels.set(base, set);
    }
    for (const expr of expressions()) {
      const used = [...expr.matchAll(/\b(fangate_\w+)\{/g)].map((m) => m[1]!);
      expect(used.length, expr).toBeGreaterThan(0);
      for (const name of used) {
        const base = name.replace(HISTOGRAM_SUFFIX, '');
        const type = types.get(name) ?? types.get(base);
        expect(type, `${name} is not exported at /metrics`).toBeDefined();
        if (name !== base && !types.has(name)) expect(type, name).toBe('histogram');
        const grouped = [...expr.matchAll(/by \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()));
        const known = labels.get(base);
        expect(known, `${name} has no samples at /metrics`).toBeDefined();
        for (const label of grouped) expect(known!.has(label), `${expr}: ${name} has no label "${label}"`).toBe(true);
      }
    }
  });
});
