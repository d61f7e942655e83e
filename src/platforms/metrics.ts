import { Histogram, type Registry } from 'prom-client';

const NAME = 'fangate_upstream_request_duration_seconds';

/**
 * Time of calls to a platform (Access API requests, health checks) by platform and outcome: `2xx`…`5xx`
 * for answers, `unavailable`, `timeout` or `proxy_error` for failures, `client_closed` for an Access API
 * call dropped because its client hung up first. One histogram per registry, shared
 * by the domains that call platforms.
 */
export function upstreamDurationMetric(registry: Registry): Histogram<'platform' | 'outcome'> {
  const existing = registry.getSingleMetric(NAME);
  if (existing) return existing as Histogram<'platform' | 'outcome'>;
  return new Histogram({
    name: NAME,
    help: 'Duration of calls to the platforms (Access API requests and health checks), by platform and outcome.',
    labelNames: ['platform', 'outcome'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
}

/** The outcome label of a platform answer's status. */
export const statusOutcome = (status: number) => `${Math.floor(status / 100)}xx`;
