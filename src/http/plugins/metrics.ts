import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Histogram, type Registry } from 'prom-client';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Registry;
  }
}

/** HTTP metrics and `/metrics`, on the app's registry (domains add their own metrics to it). */
export interface MetricsOptions {
  registry: Registry;
  /** Subscribes to requests whose caller hung up (with the status they count as): onResponse never runs for them. */
  onAborted?: (listener: (request: FastifyRequest, reply: FastifyReply, statusCode: number) => void) => void;
}

async function metricsPlugin(app: FastifyInstance, { registry, onAborted }: MetricsOptions) {
  const requests = new Counter({
    name: 'fangate_http_requests_total',
    help: 'HTTP requests answered, by route template and status (499: the caller hung up before any answer).',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'fangate_http_request_duration_seconds',
    help: 'Time to answer HTTP requests.',
    labelNames: ['method', 'route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  app.decorate('metrics', registry);

  /** Requests counted at their hang-up: a late onResponse of theirs counts nothing more. */
  const counted = new WeakSet<FastifyReply>();
  const count = (request: FastifyRequest, reply: FastifyReply, statusCode: number) => {
    if (counted.has(reply)) return;
    // The route template, never the raw URL: ids would explode the label set.
    const route = request.routeOptions.url ?? 'unmatched';
    requests.inc({ method: request.method, route, status: String(statusCode) });
    duration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  };
  app.addHook('onResponse', async (request, reply) => count(request, reply, reply.statusCode));
  // A caller that hung up counts too (499 when nothing was answered yet), once.
  onAborted?.((request, reply, statusCode) => {
    count(request, reply, statusCode);
    counted.add(reply);
  });

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });
}

export default fp(metricsPlugin, { name: 'fangate-metrics' });
