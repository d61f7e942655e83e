import { timingSafeEqual } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { loadLinkAssets } from '../../link/assets.js';
import { renderLinkPage, renderNotFoundPage } from '../../link/page.js';
import { csrfFor, type LinkService } from '../../link/service.js';
import { ApiError } from '../../lib/errors.js';

/**
 * The hosted Link page (DESIGN 6), outside /api: no API key, the token in the path is the credential.
 * Every state-changing call needs the page's CSRF header and, when the browser sends one, FanGate's Origin.
 */

export interface LinkPageOptions {
  link: LinkService;
  publicUrl: string;
  /** Fires when the server starts shutting down: long-polls and event streams answer at once. */
  closing: AbortSignal;
}

const TokenParams = Type.Object({ token: Type.String({ maxLength: 64 }) });
const hide = { hide: true } as const;

function whileWanted(request: FastifyRequest, closing: AbortSignal): AbortSignal {
  const gone = new AbortController();
  request.raw.once('close', () => gone.abort());
  return AbortSignal.any([gone.signal, closing]);
}

/** Strict CSP: own origin only, no inline script, framed only by the integrator's redirect origin. */
function pageHeaders(reply: FastifyReply, frameAncestor: string | null): FastifyReply {
  return reply
    .header(
      'content-security-policy',
      [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'none'",
        "base-uri 'none'",
        `frame-ancestors ${frameAncestor ?? "'none'"}`,
      ].join('; '),
    )
    .header('referrer-policy', 'no-referrer')
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', 'no-store')
    .header('cross-origin-opener-policy', 'same-origin-allow-popups')
    .header('permissions-policy', 'camera=(), microphone=(), geolocation=()');
}

const same = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

export const linkPageRoutes: FastifyPluginAsyncTypebox<LinkPageOptions> = async (app, { link, publicUrl, closing }) => {
  const assets = loadLinkAssets();
  const ownOrigin = new URL(publicUrl).origin;

  // Against guessing codes and tokens through the page: per client address and per link.
  await app.register(rateLimit, {
    global: false,
    enableDraftSpec: true,
    errorResponseBuilder: (_request, context) =>
      new ApiError(429, 'rate_limited', `Too many requests: at most ${context.max} per minute. Wait a moment.`, { retryAfterSec: Math.max(1, Math.ceil(context.ttl / 1000)) }),
  });
  const perLink = (max: number) => ({
    rateLimit: { max, timeWindow: 60_000, keyGenerator: (request: FastifyRequest) => `${request.ip}:${(request.params as { token?: string }).token ?? ''}` },
  });

  /** CSRF: the page's header token, and the browser's Origin (when sent) must be FanGate's own. */
  async function checkCsrf(request: FastifyRequest<{ Params: { token: string } }>) {
    const origin = request.headers.origin;
    const header = request.headers['x-fangate-csrf'];
    const expected = csrfFor(request.params.token);
    if ((origin !== undefined && origin !== ownOrigin) || typeof header !== 'string' || !same(header, expected)) {
      throw new ApiError(403, 'csrf_failed', 'This request did not come from the Link page. Reload the page and try again.');
    }
  }

  app.get('/link.js', { schema: hide }, async (_request, reply) =>
    reply.type(assets.embed.contentType).header('cache-control', 'public, max-age=300').header('x-content-type-options', 'nosniff').header('cross-origin-resource-policy', 'cross-origin').send(assets.embed.body),
  );

  app.get('/link/assets/:file', { schema: { ...hide, params: Type.Object({ file: Type.String({ maxLength: 40 }) }) } }, async (request, reply) => {
    const asset = assets.page[request.params.file];
    if (!asset) throw new ApiError(404, 'not_found', 'No such file.');
    return reply.type(asset.contentType).header('cache-control', 'public, max-age=300').header('x-content-type-options', 'nosniff').send(asset.body);
  });

  app.get('/link/:token', { schema: { ...hide, params: TokenParams }, config: perLink(60) }, async (request, reply) => {
    let opened: Awaited<ReturnType<LinkService['open']>>;
    try {
      opened = await link.open(request.params.token);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return pageHeaders(reply.code(404), null).type('text/html; charset=utf-8').send(renderNotFoundPage());
      throw error;
    }
    const state = opened.state;
    // Opening a link that has already ended shows that, with no new redirect.
    if (state.step === 'done') state.step = 'closed';
    const html = renderLinkPage(opened.link, state, csrfFor(request.params.token));
    return pageHeaders(reply, new URL(opened.link.redirect_url).origin).type('text/html; charset=utf-8').send(html);
  });

  app.get(
    '/link/:token/state',
    {
      schema: {
        ...hide,
        params: TokenParams,
        querystring: Type.Object({ wait: Type.Optional(Type.Integer({ minimum: 0, maximum: 30 })), state: Type.Optional(Type.String({ maxLength: 40 })) }),
      },
      config: perLink(120),
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store');
      const { wait, state } = request.query;
      if (!wait) return link.state(request.params.token);
      return link.wait(request.params.token, wait, state, whileWanted(request, closing));
    },
  );

  app.get('/link/:token/events', { schema: { ...hide, params: TokenParams }, config: perLink(60) }, async (request, reply) => {
    const changes = link.changes(request.params.token, whileWanted(request, closing));
    const first = await changes.next(); // 404s before the stream starts
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'close', 'x-request-id': request.id, 'x-accel-buffering': 'no' });
    let id = 0;
    const send = (value: unknown) => res.write(`id: ${++id}\nevent: state\ndata: ${JSON.stringify(value)}\n\n`);
    // Proxies drop quiet connections: a comment every 15 s keeps the stream open.
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    try {
      if (!first.done) send(first.value);
      for await (const state of changes) send(state);
    } catch (error) {
      request.log.warn({ err: error }, 'link event stream failed');
    } finally {
      clearInterval(keepAlive);
      res.end();
    }
  });

  app.get('/link/:token/qr.svg', { schema: { ...hide, params: TokenParams, querystring: Type.Object({ attempt: Type.Optional(Type.String({ maxLength: 64 })) }) }, config: perLink(60) }, async (request, reply) => {
    const svg = await link.qrSvg(request.params.token);
    return reply.type('image/svg+xml').header('cache-control', 'no-store').header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'").send(svg);
  });

  // ---- the page's actions (JSON, CSRF-checked) -------------------------------------------------------

  const StartBody = Type.Object(
    {
      method: Type.Enum(['email_password', 'raw_data', 'mobile_app']),
      login: Type.Optional(Type.String({ maxLength: 320 })),
      password: Type.Optional(Type.String({ maxLength: 1024 })),
      cookies: Type.Optional(Type.String({ maxLength: 16384 })),
      xbc: Type.Optional(Type.String({ maxLength: 512 })),
      user_agent: Type.Optional(Type.String({ maxLength: 1024 })),
    },
    { additionalProperties: false },
  );
  app.post('/link/:token/start', { schema: { ...hide, params: TokenParams, body: StartBody }, config: perLink(20), preHandler: checkCsrf }, async (request) => {
    const { method, ...input } = request.body;
    return link.start(request.params.token, method, input);
  });

  const CodeBody = Type.Object({ code: Type.String({ minLength: 4, maxLength: 16 }) }, { additionalProperties: false });
  app.post('/link/:token/code', { schema: { ...hide, params: TokenParams, body: CodeBody }, config: perLink(10), preHandler: checkCsrf }, async (request) =>
    link.submitCode(request.params.token, request.body.code),
  );

  const Empty = Type.Object({}, { additionalProperties: false });
  app.post('/link/:token/selfie', { schema: { ...hide, params: TokenParams, body: Empty }, config: perLink(20), preHandler: checkCsrf }, async (request) => link.confirmSelfie(request.params.token));
  app.post('/link/:token/email', { schema: { ...hide, params: TokenParams, body: Empty }, config: perLink(10), preHandler: checkCsrf }, async (request) => link.requestEmail(request.params.token));
  app.post('/link/:token/back', { schema: { ...hide, params: TokenParams, body: Empty }, config: perLink(30), preHandler: checkCsrf }, async (request) => link.back(request.params.token));
  app.post('/link/:token/finish', { schema: { ...hide, params: TokenParams, body: Empty }, config: perLink(30), preHandler: checkCsrf }, async (request) => link.finish(request.params.token));
  const CancelBody = Type.Object({ step: Type.String({ pattern: '^[a-z0-9_]{1,40}$' }) }, { additionalProperties: false });
  app.post('/link/:token/cancel', { schema: { ...hide, params: TokenParams, body: CancelBody }, config: perLink(30), preHandler: checkCsrf }, async (request) =>
    link.cancelPage(request.params.token, request.body.step),
  );
};
