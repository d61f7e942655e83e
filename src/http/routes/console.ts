import { createHash, timingSafeEqual } from 'node:crypto';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import rateLimit from '@fastify/rate-limit';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { AccountService } from '../../accounts/service.js';
import type { AuditLog } from '../../audit/service.js';
import type { AttemptHistory } from '../../connect/index.js';
import type { ConnectService } from '../../connect/service.js';
import type { ConsoleSession, ConsoleSessions } from '../../console/sessions.js';
import { SESSION_TTL_MS } from '../../console/sessions.js';
import { CONSOLE_CSS } from '../../console/style.js';
import * as views from '../../console/views.js';
import type { Actor } from '../../lib/audit.js';
import { ApiError, notFound } from '../../lib/errors.js';
import type { LinkService } from '../../link/service.js';
import type { OrgService, Organization } from '../../orgs/service.js';
import type { WebhookService } from '../../webhooks/service.js';
import { fromFastifyError } from '../plugins/errors.js';

/**
 * The operator console (DESIGN 11) at /console: server-rendered pages behind a sign-in with the admin
 * token (every organisation) or an API key with scope `console` (its organisation). Never open: without a
 * session, pages redirect to the sign-in and actions answer 401. The session is server-side (a random token
 * in an HttpOnly, SameSite=Strict cookie, Secure over https); every form carries the session's CSRF token
 * and a foreign Origin is refused. No script runs on these pages: the CSP allows none.
 */
export interface ConsoleOptions {
  orgs: OrgService;
  sessions: ConsoleSessions;
  accounts: AccountService;
  connect: ConnectService;
  attemptHistory: AttemptHistory;
  webhooks: WebhookService;
  link: LinkService;
  audit: AuditLog;
  adminToken?: string;
  publicUrl: string;
}

const COOKIE = 'fangate_console';
const PAGE = 25;
const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
const same = (a: string, b: string) => timingSafeEqual(digest(a), digest(b));

interface Signed {
  session: ConsoleSession;
  viewer: views.ConsoleViewer;
  actor: Actor;
}

declare module 'fastify' {
  interface FastifyRequest {
    consoleUser?: Signed;
  }
}

/** Strict CSP: no script at all, styles and forms from this origin only, never framed. */
function pageHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .type('text/html; charset=utf-8')
    .header(
      'content-security-policy',
      ["default-src 'none'", "style-src 'self'", "img-src 'self'", "form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'"].join('; '),
    )
    // same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` on form posts, and the
    // origin check below needs the real one. Other sites still learn nothing of console URLs.
    .header('referrer-policy', 'same-origin')
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('cache-control', 'no-store')
    .header('cross-origin-opener-policy', 'same-origin');
}

const IdParam = (name: string) => Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_]+$', description: name });
const OrgParams = Type.Object({ org: IdParam('organisation') });
const PageQuery = Type.Object({ cursor: Type.Optional(Type.String({ maxLength: 200 })) });
const hide = { hide: true } as const;

export const consoleRoutes: FastifyPluginAsyncTypebox<ConsoleOptions> = async (app, options) => {
  const { orgs, sessions } = options;
  const ownOrigin = new URL(options.publicUrl).origin;
  const secureCookie = new URL(options.publicUrl).protocol === 'https:';

  await app.register(cookie);
  // HTML forms post urlencoded bodies: accepted here only, never under /api.
  await app.register(formbody, { bodyLimit: 16 * 1024 });
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) =>
      new ApiError(429, 'rate_limited', `Too many sign-in attempts: at most ${context.max} per minute. Wait a moment.`, { retryAfterSec: Math.max(1, Math.ceil(context.ttl / 1000)) }),
  });

  // Errors as HTML pages (not problem documents): a person reads them.
  app.setErrorHandler((raw: FastifyError, request, reply) => {
    const error = raw instanceof ApiError ? raw : fromFastifyError(raw, request);
    if (error.status >= 500 && !(raw instanceof ApiError)) request.log.error({ err: raw }, 'console request failed');
    if (error.retryAfterSec) reply.header('retry-after', String(error.retryAfterSec));
    return pageHeaders(reply.code(error.status)).send(views.errorPage(error.status, error.message, Boolean(request.consoleUser)));
  });
  app.setNotFoundHandler((request, reply) => pageHeaders(reply.code(404)).send(views.errorPage(404, 'There is no such console page.', Boolean(request.consoleUser))));

  const cookieOptions = { path: '/console', httpOnly: true, sameSite: 'strict' as const, secure: secureCookie };
  const secure = (request: FastifyRequest) => secureCookie || request.protocol === 'https';

  /** The signed-in operator, checked again on every request (a revoked key or a changed admin token ends it). */
  async function signedIn(request: FastifyRequest): Promise<Signed | undefined> {
    const session = await sessions.find(request.cookies[COOKIE]);
    if (!session) return undefined;
    if (session.actorType === 'admin') {
      if (!options.adminToken) return undefined;
      return { session, viewer: { label: 'admin', admin: true, csrf: session.csrf }, actor: { type: 'admin', id: session.actorId } };
    }
    const principal = await orgs.findActiveKey(session.actorId);
    if (!principal || !principal.apiKey.scopes.includes('console') || principal.organization.id !== session.orgId) return undefined;
    return {
      session,
      viewer: { label: `API key ${principal.apiKey.name} (${principal.apiKey.prefix}…)`, admin: false, csrf: session.csrf },
      actor: { type: 'api_key', id: principal.apiKey.id },
    };
  }

  /** A page: without a session, to the sign-in. */
  async function requirePage(request: FastifyRequest, reply: FastifyReply) {
    const user = await signedIn(request);
    if (!user) return reply.redirect('/console/sign-in', 303);
    request.consoleUser = user;
  }

  /** An action (POST): without a session 401; a foreign origin or a wrong CSRF token 403. */
  async function requireAction(request: FastifyRequest) {
    const user = await signedIn(request);
    if (!user) throw new ApiError(401, 'unauthorized', 'Sign in to the console first.');
    request.consoleUser = user;
    checkOrigin(request);
    const csrf = (request.body as { csrf?: unknown } | undefined)?.csrf;
    if (typeof csrf !== 'string' || !same(csrf, user.session.csrf)) throw new ApiError(403, 'csrf_failed', 'This form is out of date. Reload the page and try again.');
  }

  function checkOrigin(request: FastifyRequest) {
    const origin = request.headers.origin;
    if (origin === undefined) return;
    const hostOrigin = `${request.protocol}://${request.host}`;
    if (origin !== ownOrigin && origin !== hostOrigin) throw new ApiError(403, 'csrf_failed', 'This request did not come from the console.');
  }

  /** The organisation a page is about: any for the admin, only its own for an API key (404 otherwise). */
  async function orgOf(request: FastifyRequest, id: string): Promise<Organization> {
    const user = request.consoleUser!;
    if (user.session.orgId !== null && user.session.orgId !== id) throw notFound('Organisation');
    const org = await orgs.findOrganization({ id });
    if (!org) throw notFound('Organisation');
    return org;
  }

  app.get('/assets/console.css', { schema: hide }, async (_request, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=300').header('x-content-type-options', 'nosniff').send(CONSOLE_CSS),
  );

  app.get('/', { schema: hide }, async (request, reply) => {
    const user = await signedIn(request);
    if (!user) return reply.redirect('/console/sign-in', 303);
    return reply.redirect(user.session.orgId === null ? '/console/orgs' : `/console/orgs/${encodeURIComponent(user.session.orgId)}/accounts`, 303);
  });

  app.get('/sign-in', { schema: hide }, async (request, reply) => {
    if (await signedIn(request)) return reply.redirect('/console', 303);
    return pageHeaders(reply).send(views.signInPage());
  });

  app.post(
    '/sign-in',
    {
      schema: { ...hide, body: Type.Object({ token: Type.String({ maxLength: 512 }) }) },
      config: { rateLimit: { max: 10, timeWindow: 60_000 } },
    },
    async (request, reply) => {
      checkOrigin(request);
      const token = request.body.token.trim();
      let who: { actorType: 'admin' | 'api_key'; actorId: string; orgId: string | null } | undefined;
      if (options.adminToken && token && same(token, options.adminToken)) {
        who = { actorType: 'admin', actorId: 'admin_token', orgId: null };
      } else if (token.startsWith('fg_')) {
        const principal = await orgs.authenticate(token);
        if (principal && !principal.apiKey.scopes.includes('console')) {
          return pageHeaders(reply.code(403)).send(views.signInPage({ error: 'This API key lacks the "console" scope. Sign in with a key that has it, or with the admin token.' }));
        }
        if (principal) who = { actorType: 'api_key', actorId: principal.apiKey.id, orgId: principal.organization.id };
      }
      if (!who) {
        request.log.info({ ip: request.ip }, 'console sign-in refused');
        return pageHeaders(reply.code(401)).send(views.signInPage({ error: 'That admin token or API key is not valid.' }));
      }
      const { token: sessionToken } = await sessions.create(who);
      request.log.info({ actor: who.actorType, actorId: who.actorId, org: who.orgId }, 'console sign-in');
      reply.setCookie(COOKIE, sessionToken, { ...cookieOptions, secure: secure(request), maxAge: SESSION_TTL_MS / 1000 });
      return reply.redirect('/console', 303);
    },
  );

  app.post('/sign-out', { schema: { ...hide, body: Type.Object({ csrf: Type.String({ maxLength: 100 }) }) }, preHandler: requireAction }, async (request, reply) => {
    await sessions.remove(request.cookies[COOKIE]);
    reply.clearCookie(COOKIE, { ...cookieOptions, secure: secure(request) });
    return pageHeaders(reply).send(views.signInPage({ notice: 'You are signed out.' }));
  });

  const frame = (request: FastifyRequest, org?: Organization) => ({ viewer: request.consoleUser!.viewer, ...(org ? { org } : {}) });

  app.get('/orgs', { schema: hide, preHandler: requirePage }, async (request, reply) => {
    const user = request.consoleUser!;
    const list = user.session.orgId === null ? await orgs.listOrganizations() : [await orgOf(request, user.session.orgId)];
    return pageHeaders(reply).send(views.orgsPage(frame(request), list));
  });

  app.get('/orgs/:org', { schema: { ...hide, params: OrgParams }, preHandler: requirePage }, async (request, reply) => {
    const org = await orgOf(request, request.params.org);
    return reply.redirect(views.orgPath(org, '/accounts'), 303);
  });

  app.get('/orgs/:org/accounts', { schema: { ...hide, params: OrgParams, querystring: PageQuery }, preHandler: requirePage }, async (request, reply) => {
    const org = await orgOf(request, request.params.org);
    const page = await options.accounts.list(org.id, { limit: PAGE, cursor: request.query.cursor });
    return pageHeaders(reply).send(views.accountsPage({ ...frame(request, org), org }, page.data, page.next_cursor));
  });

  app.get(
    '/orgs/:org/accounts/:id',
    { schema: { ...hide, params: Type.Object({ org: IdParam('organisation'), id: IdParam('account') }) }, preHandler: requirePage },
    async (request, reply) => {
      const org = await orgOf(request, request.params.org);
      const account = await options.accounts.get(org.id, request.params.id);
      const attempts = await options.connect.list(org.id, null, { limit: PAGE, account_id: account.id });
      return pageHeaders(reply).send(views.accountPage({ ...frame(request, org), org }, account, attempts.data));
    },
  );

  app.get('/orgs/:org/attempts', { schema: { ...hide, params: OrgParams, querystring: PageQuery }, preHandler: requirePage }, async (request, reply) => {
    const org = await orgOf(request, request.params.org);
    const page = await options.connect.list(org.id, null, { limit: PAGE, cursor: request.query.cursor });
    return pageHeaders(reply).send(views.attemptsPage({ ...frame(request, org), org }, page.data, page.next_cursor));
  });

  app.get(
    '/orgs/:org/attempts/:id',
    { schema: { ...hide, params: Type.Object({ org: IdParam('organisation'), id: IdParam('attempt') }) }, preHandler: requirePage },
    async (request, reply) => {
      const org = await orgOf(request, request.params.org);
      const attempt = await options.connect.get(org.id, null, request.params.id);
      const history = await options.attemptHistory.of(org.id, attempt.attempt_id);
      return pageHeaders(reply).send(views.attemptPage({ ...frame(request, org), org }, attempt, history));
    },
  );

  app.get('/orgs/:org/webhooks', { schema: { ...hide, params: OrgParams, querystring: PageQuery }, preHandler: requirePage }, async (request, reply) => {
    const org = await orgOf(request, request.params.org);
    const page = await options.webhooks.list(org.id, { limit: PAGE, cursor: request.query.cursor });
    return pageHeaders(reply).send(views.webhooksPage({ ...frame(request, org), org }, page.data, page.next_cursor));
  });

  const EndpointParams = Type.Object({ org: IdParam('organisation'), id: IdParam('webhook endpoint') });
  app.get(
    '/orgs/:org/webhooks/:id',
    {
      schema: { ...hide, params: EndpointParams, querystring: Type.Object({ cursor: Type.Optional(Type.String({ maxLength: 200 })), retried: Type.Optional(IdParam('delivery')) }) },
      preHandler: requirePage,
    },
    async (request, reply) => {
      const org = await orgOf(request, request.params.org);
      const endpoint = await options.webhooks.get(org.id, request.params.id);
      const page = await options.webhooks.listDeliveries(org.id, endpoint.id, { limit: PAGE, cursor: request.query.cursor });
      const flash = request.query.retried ? { notice: `Delivery ${request.query.retried} is queued to be sent again.` } : undefined;
      return pageHeaders(reply).send(views.endpointPage({ ...frame(request, org), org }, endpoint, page.data, page.next_cursor, flash));
    },
  );

  app.post(
    '/orgs/:org/webhooks/:id/deliveries/:delivery_id/retry',
    {
      schema: { ...hide, params: Type.Object({ org: IdParam('organisation'), id: IdParam('webhook endpoint'), delivery_id: IdParam('delivery') }), body: Type.Object({ csrf: Type.String({ maxLength: 100 }) }) },
      preHandler: requireAction,
    },
    async (request, reply) => {
      const org = await orgOf(request, request.params.org);
      const delivery = await options.webhooks.retryDelivery(org.id, request.params.id, request.params.delivery_id);
      request.log.info({ org: org.id, endpoint: request.params.id, delivery: delivery.id, actor: request.consoleUser!.actor }, 'delivery retried from the console');
      return reply.redirect(`${views.orgPath(org, `/webhooks/${encodeURIComponent(request.params.id)}`)}?retried=${encodeURIComponent(delivery.id)}`, 303);
    },
  );

  app.get('/orgs/:org/links', { schema: { ...hide, params: OrgParams, querystring: PageQuery }, preHandler: requirePage }, async (request, reply) => {
    const org = await orgOf(request, request.params.org);
    const page = await options.link.list(org.id, { limit: PAGE, cursor: request.query.cursor });
    return pageHeaders(reply).send(views.linksPage({ ...frame(request, org), org }, page.data, page.next_cursor));
  });

  app.get('/orgs/:org/audit', { schema: { ...hide, params: OrgParams, querystring: PageQuery }, preHandler: requirePage }, async (request, reply) => {
    const org = await orgOf(request, request.params.org);
    const page = await options.audit.list(org.id, { limit: PAGE, cursor: request.query.cursor });
    return pageHeaders(reply).send(views.auditPage({ ...frame(request, org), org }, page.data, page.next_cursor));
  });
};
