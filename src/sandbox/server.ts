import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { controlApi } from './control.js';
import { errors, sendError } from './errors.js';
import { facePages } from './face.js';
import { fanslyApi } from './fansly.js';
import { onlyFansApi } from './onlyfans.js';
import { SandboxState } from './state.js';
import { recordRequest } from './users.js';
import { header, remoteAddress } from './wire.js';

export interface SandboxAppOptions {
  logger?: FastifyBaseLogger | false;
  /** Milliseconds since the epoch; inject to move time in tests (`+expire`, hourly lock, TOTP). */
  clock?: () => number;
  /** The sandbox's own base URL, for the links it hands out (resolved lazily: the port is known late). */
  baseUrl: () => string;
}

/** The sandbox as a Fastify app, not yet listening. */
export async function buildSandboxApp(options: SandboxAppOptions): Promise<{ app: FastifyInstance; state: SandboxState }> {
  const state = new SandboxState(options.clock ?? Date.now, options.baseUrl);
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    // Clients keep connections alive; closing the sandbox must not wait for them.
    forceCloseConnections: true,
    // Bodies are checked strictly: {"text": 42} is a 400, not the string "42" as with Fastify's coercing
    // default. Every query, path and header field of the sandbox is a string, so none needs coercion either.
    // (Fastify's own Ajv rather than TypeBox's compiler, whose modules cost ≈ 200 ms of every `fangate serve`.)
    ajv: { customOptions: { coerceTypes: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // An empty body with a JSON content type is treated as no body (bodyless control calls from fetch
  // helpers), instead of Fastify's "body cannot be empty" error.
  const jsonParser = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body.toString();
    if (text === '') done(null, undefined);
    else jsonParser(request, text, done);
  });

  app.setErrorHandler((error, request, reply) => sendError(request, reply, error));
  app.setNotFoundHandler((request, reply) =>
    sendError(request, reply, errors.notFound(`Route ${request.method} ${request.url.split('?')[0]} not found`)),
  );

  // Platform API requests in flight: counted until the answer is sent or the connection closed, whichever
  // comes first ('close' fires once for both).
  app.addHook('onRequest', async (request, reply) => {
    if (!request.url.startsWith('/api2/v2/') && !request.url.startsWith('/api/v1/')) return;
    state.openRequests++;
    reply.raw.once('close', () => state.openRequests--);
  });

  app.addHook('onResponse', async (request, reply) => {
    const attributed = state.attribution(request);
    if (!attributed) return;
    const length = header(request, 'content-length');
    const bodyBytes = length !== undefined && /^[0-9]+$/.test(length) ? Number(length) : null;
    recordRequest(attributed.user, {
      platform: attributed.user.platform,
      method: request.method,
      path: request.url,
      remote_address: remoteAddress(request),
      user_agent: request.headers['user-agent'] ?? null,
      time: new Date(attributed.at).toISOString(),
      status: reply.statusCode,
      has_body: (bodyBytes ?? 0) > 0 || request.headers['transfer-encoding'] !== undefined,
      body_bytes: bodyBytes,
      content_type: header(request, 'content-type') ?? null,
      rotated: attributed.rotated,
    });
  });

  await app.register(onlyFansApi, { prefix: '/api2/v2', state });
  await app.register(fanslyApi, { prefix: '/api/v1', state });
  await app.register(facePages, { state });
  await app.register(controlApi, { prefix: '/__sandbox', state });

  // Avatars the profile endpoints link to: a coloured initial, so the URL resolves.
  app.get('/avatars/:file', { schema: { params: Type.Object({ file: Type.String({ pattern: '^[0-9]{1,20}\\.svg$' }) }) } }, async (request, reply) => {
    const hue = Number(request.params.file.slice(0, -4)) % 360;
    reply.type('image/svg+xml').header('cache-control', 'public, max-age=86400');
    return `<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96"><rect width="96" height="96" fill="hsl(${hue} 60% 55%)"/></svg>`;
  });

  return { app, state };
}
