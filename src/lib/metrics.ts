import { collectDefaultMetrics, Registry } from 'prom-client';

export { Counter, Gauge, Histogram } from 'prom-client';

/**
 * One Prometheus registry per FanGate instance (several may share a process in tests). The composition
 * root creates it and hands it to each domain, which registers its own metrics; `/metrics` serves it.
 */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'fangate_' });
  return registry;
}

export type { Registry };
