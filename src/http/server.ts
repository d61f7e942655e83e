import type { Socket } from 'node:net';
import { fastifySSE as sse } from '@fastify/sse';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Database } from '../db/database.js';
import type { Registry } from '../lib/metrics.js';
import { ApiError } from '../lib/errors.js';
import { randomBase62 } from '../lib/ids.js';
import type { OrgService } from '../orgs/service.js';
import type { RotationReport } from '../vault/rotate.js';
import type { AuditLog } from '../audit/service.js';
import type { AttemptHistory } from '../connect/index.js';
import type { Vault } from '../vault/vault.js';
import authPlugin from './plugins/auth.js';
import errorsPlugin, { clientErrorHandler, frameworkErrors } from './plugins/errors.js';
import { registerComponents } from './components.js';
import { transformDocument, transformRoute } from './openapi.js';
import idempotencyPlugin from './plugins/idempotency.js';
import metricsPlugin from './plugins/metrics.js';
import rateLimitPlugin, { authFailureLimiter, connectLimiter, createWindowCounter } from './plugins/rate-limit.js';
import { adminRoutes } from './routes/admin.js';
import { auditRoutes } from './routes/audit.js';
import { consoleRoutes } from './routes/console.js';
import type { ConsoleSessions } from '../console/sessions.js';
import { apiKeyRoutes } from './routes/api-keys.js';
import { authenticateRoutes, mobileAuthRoutes } from './routes/authenticate.js';
import { accessRoutes, accountRoutes } from './routes/accounts.js';
import type { AccountService } from '../accounts/service.js';
import type { ConnectService } from '../connect/service.js';
import { healthRoutes } from './routes/health.js';
import { LazyRequestLogger, type RequestLine, requestLineWriter } from './request-logger.js';
import { redactUrl } from '../logger.js';
import { linkRoutes } from './routes/link.js';
import { linkPageRoutes } from './routes/link-page.js';
import type { LinkService } from '../link/service.js';
import { createValidatorBuilder, type LazyCompile } from './validation.js';
import { createSerializerBuilder } from './serialization.js';
import { webhookRoutes } from './routes/webhooks.js';
import type { WebhookService } from '../webhooks/service.js';
import { accessApiRoutes } from './routes/access.js';
import type { AccessService } from '../access/service.js';
import type { Monitor } from '../monitor/service.js';
import type { Actor } from '../lib/audit.js';

export interface HttpDependencies {
  config: Config;
  logger: Logger;
  database: Database;
  vault: Vault;
  orgs: OrgService;
  connect: ConnectService;
  accounts: AccountService;
  link: LinkService;
  webhooks: WebhookService;
  metrics: Registry;
  /** Embedded mode: the token `fangate keys create` uses to ask this running server (loopback only). */
  localAdminToken?: string;
  access: AccessService;
  monitor: Pick<Monitor, 'checkNow'>;
  audit: AuditLog;
  attemptHistory: AttemptHistory;
  consoleSessions: ConsoleSessions;
  /** Re-encrypts every secret under the current key (and audits it). */
  rotateVault: (actor: Actor) => Promise<RotationReport>;
}

/**
 * Logs each request once, when it completes, with method, URL, status and time together. The line of an
 * expected outcome has a fixed shape (id, method, the URL with its secret segments scrubbed, client
 * address, status, time, problem code), so it is written without the redaction pass every other line
 * gets (the costliest part of logging a request); lines with an error object keep it.
 *
 * A request whose connection closes before its answer is complete (the caller hung up, or a stream was cut
 * short) never completes for Fastify, so its line is written at the close: `aborted`, and 499 when nothing was
 * answered yet. (Fastify's onRequestAbort hook misses a request whose body was read, so every POST.)
 */
class OneLinePerRequest extends LogController {
  private readonly lines: Logger;
  private readonly writeLine: (line: RequestLine) => void;
  /** Replies whose line was written at their close: a late 'finish' or error of theirs logs nothing more. */
  private readonly aborted = new WeakSet<FastifyReply>();
  /** Who else counts a hang-up (the HTTP metrics: their onResponse hook never runs for one). */
  private readonly abortListeners: Array<(request: FastifyRequest, reply: FastifyReply, statusCode: number) => void> = [];
  constructor(logger: Logger) {
    super();
    this.lines = logger.child({}, { redact: [] });
    this.writeLine = requestLineWriter(this.lines);
  }
  onAborted(listener: (request: FastifyRequest, reply: FastifyReply, statusCode: number) => void): void {
    this.abortListeners.push(listener);
  }
  override incomingRequest(request: FastifyRequest, reply: FastifyReply): void {
    const res = reply.raw;
    res.once('close', () => {
      if (!res.writableFinished) this.requestAborted(request, reply);
    });
  }
  private requestAborted(request: FastifyRequest, reply: FastifyReply): void {
    this.aborted.add(reply);
    // Nothing answered yet is a 499 (nginx's "client closed request", the problem callerGone() names); an
    // answer cut short keeps the status it was sent with.
    const answered = reply.raw.headersSent;
    const statusCode = answered ? reply.statusCode : 499;
    for (const listener of this.abortListeners) listener(request, reply, statusCode);
    if (!this.lines.isLevelEnabled('info')) return;
    const line = { reqId: request.id, req: request, res: { statusCode }, responseTime: reply.elapsedTime, aborted: true };
    this.lines.info(answered ? line : { ...line, code: 'client_closed_request' }, 'request aborted');
  }
  override streamError(error: Error & { code?: string }, request: FastifyRequest, reply: FastifyReply): void {
    // A premature close is a response closed before its end: its request line says so already.
    if (error.code !== 'ERR_STREAM_PREMATURE_CLOSE') super.streamError(error, request, reply);
  }
  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.aborted.has(reply)) return;
    // Expected outcomes (a 4xx, an upstream 502/503/504 the API answers on purpose) are no errors of
    // FanGate's: one info line with their code, no stack. Only what nobody meant to happen is an error.
    const expected = !error || error instanceof ApiError || reply.statusCode < 500;
    if (expected) {
      if (!this.lines.isLevelEnabled('info')) return;
      const code = (reply as FastifyReply & { problemCode?: string }).problemCode;
      this.writeLine({ reqId: request.id, method: request.method, url: redactUrl(request.url), ip: request.ip, statusCode: reply.statusCode, responseTime: reply.elapsedTime, code });
    } else reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored');
  }
}

const SUCCESS_TEXT: Record<string, string> = { '200': 'OK', '201': 'Created', '202': 'Accepted: the attempt moves on in the background', '204': 'No Content' };

const REQUEST_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Each app's route schema compile steps (they run on first use: src/http/validation.ts). */
const schemaCompiles = new WeakMap<FastifyInstance, LazyCompile[]>();

/** Compiles every route schema of `app` that has not been used yet, as a start used to; answers how many there are. */
export function compileRouteSchemas(app: FastifyInstance): number {
  const compiles = schemaCompiles.get(app) ?? [];
  for (const compile of compiles) compile();
  return compiles.length;
}

/** The Fastify app: plugins, the OpenAPI document and every route module. */
export async function buildHttpServer(deps: HttpDependencies): Promise<FastifyInstance> {
  const { config, logger, database, vault, orgs, connect, accounts } = deps;
  const compiles: LazyCompile[] = [];
  const track = (compile: LazyCompile) => void compiles.push(compile);
  const requestLog = new OneLinePerRequest(logger);
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: 1024 * 1024,
    // No byte either way for this long closes the socket: a caller that stopped reading a streamed Access API
    // answer would otherwise hold it, and the platform request behind it, until the process stops.
    connectionTimeout: config.httpIdleTimeoutMs,
    // Honour a caller's x-request-id when it is sane, so traces join up across services.
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : `req_${randomBase62(22)}`;
    },
    // X-Forwarded-For only through the proxies the operator names (FANGATE_TRUST_PROXY).
    // (Fastify takes a hop count too; its types only say so for strings.)
    trustProxy: config.trustProxy as boolean | string[],
    // Errors met before routing (bad escapes, over-long ids, unparsable HTTP) are problem documents too.
    frameworkErrors,
    clientErrorHandler,
    routerOptions: { maxParamLength: 200 },
    // One line per request (when it completes) instead of Fastify's two.
    logController: requestLog,
    childLoggerFactory: (parent, bindings, options) => new LazyRequestLogger(parent as Logger, bindings, options) as unknown as FastifyBaseLogger,
    // Bodies without type coercion, query/params/headers with it (src/http/validation.ts); validators and
    // serialisers compile on first use.
    schemaController: { compilersFactory: { buildValidator: createValidatorBuilder(track) as never, buildSerializer: createSerializerBuilder(track) as never } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  schemaCompiles.set(app, compiles);

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  // JSON only: anything else is a clear 415 rather than a confusing validation error.
  app.removeContentTypeParser(['text/plain']);
  // Shutting down: waiting requests (long-polls, event streams) answer now, and every answer from
  // here on closes its connection, so that a graceful stop does not wait on keep-alive sockets.
  const shutdown = new AbortController();
  // Connections that never sent a byte (a client's spare, opened ahead of need, as fetch's pool and browsers
  // do) are not "idle" to Node.js, so its close would wait on them until the client drops them: closed here,
  // just before the server stops listening. Those that sent a request are left to finish it.
  const connections = new Set<Socket>();
  app.server.on('connection', (socket: Socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
  });
  app.addHook('preClose', async () => {
    shutdown.abort();
    for (const socket of connections) if (socket.bytesRead === 0) socket.destroy();
  });
  app.addHook('onSend', async (_request, reply) => {
    if (shutdown.signal.aborted) reply.header('connection', 'close');
  });
  // The contract's named schemas (Attempt, Account, Problem, …), once, before any route refers to them.
  registerComponents(app);
  await app.register(errorsPlugin);
  // Server-Sent Events with ids, retry and keep-alive comments (attempt streams, the Link page).
  await app.register(sse, { heartbeatInterval: 15_000 });
  await app.register(metricsPlugin, { registry: deps.metrics, onAborted: (listener) => requestLog.onAborted(listener) });
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'FanGate API',
        version: '0.1.0',
        license: { name: 'MIT', identifier: 'MIT' },
        contact: { name: 'FanGate maintainers' },
        description:
          'Self-hosted account connection gateway for creator platforms. Every error is an RFC 9457 problem document (`application/problem+json`).',
      },
      servers: [{ url: config.publicUrl, description: 'This FanGate server (FANGATE_PUBLIC_URL).' }],
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'An API key `fg_…`.' },
          adminToken: { type: 'http', scheme: 'bearer', description: 'FANGATE_ADMIN_TOKEN.' },
        },
      },
      security: [{ apiKey: [] }],
    },
    // Named schemas are components under their own name (`$id`), not `def-N`.
    refResolver: { buildLocalReference: (json: { $id?: unknown }, _base: unknown, _fragment: unknown, i: number) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    transform: transformRoute as never,
    transformObject: (document) => transformDocument('openapiObject' in document ? document.openapiObject : {}, SUCCESS_TEXT) as never,
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: true,
    // Swagger UI sets inline styles (no inline scripts): allow styles only, so the page logs no CSP error.
    transformStaticCSP: (header: string) => header.replace("style-src 'self' https:", "style-src 'self' https: 'unsafe-inline'"),
    theme: { title: 'FanGate API reference' },
    uiConfig: { deepLinking: true, defaultModelsExpandDepth: 0 },
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(healthRoutes, { database });
  // A worker node answers health checks and metrics only.
  if (config.role === 'worker') return app;

  await app.register(
    async (api) => {
      const shared = database.kind === 'postgres';
      const counter = createWindowCounter(database.db, shared, (error) => logger.warn({ err: error }, 'could not share rate-limit counts; retrying with the next flush'));
      api.addHook('onClose', () => counter.close());
      await api.register(authPlugin, { orgs, failures: authFailureLimiter(counter, config.rateLimit.authFailuresPerMinute) });
      await api.register(rateLimitPlugin, { perKeyPerMinute: config.rateLimit.perKeyPerMinute, ...(shared ? { counter } : {}) });
      await api.register(idempotencyPlugin, { db: database.db, vault, nodeKey: database.nodeKey });
      await api.register(apiKeyRoutes, { orgs });
      // One budget for both platforms (DESIGN 2).
      const limitConnects = connectLimiter(counter, config.rateLimit.connectPerHour);
      const closing = shutdown.signal;
      await api.register(authenticateRoutes, { prefix: '/authenticate', connect, platform: 'onlyfans', limitConnects, closing });
      await api.register(authenticateRoutes, { prefix: '/fansly/authenticate', connect, platform: 'fansly', limitConnects, closing });
      await api.register(mobileAuthRoutes, { connect });
      await api.register(accountRoutes, { accounts });
      await api.register(accessRoutes, { accounts });
      await api.register(linkRoutes, { link: deps.link });
      await api.register(webhookRoutes, { webhooks: deps.webhooks });
      await api.register(auditRoutes, { audit: deps.audit });
      await api.register(accessApiRoutes, { access: deps.access, monitor: deps.monitor });
    },
    { prefix: '/api' },
  );

  await app.register(linkPageRoutes, { link: deps.link, publicUrl: config.publicUrl, closing: shutdown.signal });
  await app.register(consoleRoutes, {
    orgs, sessions: deps.consoleSessions, accounts, connect, attemptHistory: deps.attemptHistory, webhooks: deps.webhooks, link: deps.link, audit: deps.audit,
    adminToken: config.adminToken, publicUrl: config.publicUrl, prefix: '/console',
  });

  if (config.adminToken || deps.localAdminToken) {
    await app.register(adminRoutes, { prefix: '/admin', orgs, adminToken: config.adminToken, localAdminToken: deps.localAdminToken, rotateVault: deps.rotateVault });
  }

  return app;
}
