import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { Type } from 'typebox';
import type { BucketDecision } from '../../access/bucket.js';
import { AccessRateLimitedError, type AccessService } from '../../access/service.js';
import { callerGone } from '../../lib/errors.js';
import type { Monitor } from '../../monitor/service.js';
import { componentExamples } from '../components.js';
import { AccountSchema } from '../connect-schemas.js';
import { problemResponses } from '../problem.js';

/** The Access API's passthrough (DESIGN 10) and `POST /api/accounts/{id}/check` (DESIGN 5). Thin. */

const AccountIdParams = Type.Object({ account_id: Type.String({ maxLength: 64, description: 'The account id `acct_…`.' }), '*': Type.String({ maxLength: 2048 }) });

const proxyDescription =
  "Forwards `{path}` — relative to the platform's API root (OnlyFans-like `/api2/v2`, Fansly-like `/api/v1`; a leading root is accepted and stripped) — " +
  "with the query string and body to the platform, with the account's session, user agent, device and proxy, and answers the platform's status, body and `content-type` " +
  '(hop-by-hop and `set-cookie` headers stripped; cookies the platform rotates are stored back encrypted). ' +
  'Exactly one platform request per call. Per-account token bucket (FANGATE_ACCESS_RATE_PER_MIN / FANGATE_ACCESS_BURST, default 60/min, burst 90) with `RateLimit-*` headers; 429 `rate_limited`. ' +
  '503 `account_reauthenticating` (with `Retry-After`) while the account re-authenticates; 410 `account_expired`; ' +
  '401 `session_expired` when the platform refuses the session — a health check runs at once and, where FanGate can log in alone, a re-authentication starts (`retryable: true`, `attempt_id`); ' +
  '502 `upstream_error` (`upstreamStatus`) when the platform or the proxy cannot be reached; 504 `upstream_timeout` after 30 s.';

const ProxyResponse = {
  200: Type.Unknown({ description: "The platform's answer, passed through (any status, its body and content-type).", examples: [{ list: [{ id: 1, text: 'Hello' }], hasMore: true, nextOffset: 10 }] }),
  ...problemResponses(401, 403, 404, 410, 429, 502, 503, 504),
};

const CheckResponse = Type.Object(
  {
    session_valid: Type.Boolean({ description: 'The platform accepted the stored session.' }),
    account: AccountSchema,
    attempt_id: Type.Union([Type.String(), Type.Null()], { description: 'The re-authentication this check started (or joined), if any.' }),
  },
  { examples: [{ session_valid: false, account: componentExamples('Account')?.[0], attempt_id: 'auth_5b2Kx9Vq7mT1cR8nL4dW3z' }] },
);

/**
 * Aborted when the caller hangs up before its answer is complete, whatever the method. (Fastify's `request.signal`
 * follows the request stream's 'close', which for a request with a body comes once the body was read: it never
 * told a POST's hang-up.)
 */
function callerSignal(reply: FastifyReply): AbortSignal {
  const caller = new AbortController();
  const res = reply.raw;
  if (res.destroyed) caller.abort();
  else
    res.once('close', () => {
      if (!res.writableFinished) caller.abort();
    });
  return caller.signal;
}

function rateHeaders(reply: FastifyReply, rate: BucketDecision) {
  reply.header('ratelimit-limit', String(rate.limit));
  reply.header('ratelimit-remaining', String(rate.remaining));
  reply.header('ratelimit-reset', String(rate.resetSec));
}

export const accessApiRoutes: FastifyPluginAsyncTypebox<{ access: AccessService; monitor: Pick<Monitor, 'checkNow'> }> = async (app, { access, monitor }) => {
  // Bodies pass through untouched (any content type), never parsed.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  // The account's bucket answers in the RateLimit headers of the 429 too (they replace the API key's).
  app.addHook('onError', async (_request, reply, error) => {
    if (error instanceof AccessRateLimitedError) rateHeaders(reply, error.rate);
  });

  const handler = (scope: 'accounts:read' | 'accounts:write', methods: Array<'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'>) =>
    app.route({
      method: methods,
      url: '/:account_id/proxy/*',
      config: { scope },
      schema: {
        tags: ['Access API'],
        summary: methods.length === 1 ? 'Call the platform API (GET)' : 'Call the platform API (POST, PUT, PATCH, DELETE)',
        description: `${proxyDescription} Scope \`${scope}\`.`,
        params: AccountIdParams,
        response: ProxyResponse,
      },
      handler: async (request, reply) => {
        const raw = request.raw.url ?? '';
        const q = raw.indexOf('?');
        // The path as the client sent it, still percent-encoded: passed on byte for byte (decoded, a %0D%0A
        // would be a line break no HTTP request may carry).
        const sentPath = q === -1 ? raw : raw.slice(0, q);
        const body = Buffer.isBuffer(request.body) ? request.body : undefined;
        const signal = callerSignal(reply);
        const answer = await access.proxy(request.principal.organization.id, request.params.account_id, {
          method: request.method,
          path: sentPath.slice(sentPath.indexOf('/proxy/') + '/proxy/'.length),
          query: q === -1 ? '' : raw.slice(q + 1),
          ...(request.headers['content-type'] ? { contentType: request.headers['content-type'] } : {}),
          ...(request.headers['accept-encoding'] ? { acceptEncoding: request.headers['accept-encoding'] } : {}),
          ...(body ? { body } : {}),
          // A caller that hangs up while the platform has not answered yet drops the platform request.
          signal,
        });
        // From here on a caller that goes away lets go of the platform's answer too (its connection goes back
        // to the pool or is closed), whatever the stream was doing: also when it went away just now.
        const upstream = answer.body;
        const letGo = () => {
          if (!upstream.readableEnded && !upstream.destroyed) {
            upstream.on('error', () => undefined);
            upstream.destroy();
          }
        };
        if (signal.aborted) {
          letGo();
          throw callerGone();
        }
        reply.raw.once('close', letGo);
        rateHeaders(reply, answer.rate);
        // Marks the platform's own answer (any status, any body) apart from FanGate's problem documents.
        (reply as FastifyReply).code(answer.status).headers(answer.headers).header('x-fangate-relayed', 'true');
        // The platform's bytes as they came, streamed with backpressure: no serialisation by the 200 schema.
        return reply.serializer((payload: unknown) => payload as string).send(upstream);
      },
    });
  handler('accounts:read', ['GET']);
  handler('accounts:write', ['POST', 'PUT', 'PATCH', 'DELETE']);

  app.post(
    '/accounts/:id/check',
    {
      config: { scope: 'accounts:write' },
      schema: {
        tags: ['Accounts'],
        summary: 'Check the session now',
        description:
          "Runs the health monitor's check of the account at once: validates the session with the platform. An invalid session starts a re-authentication where FanGate can log in alone " +
          '(`attempt_id`; single-flight: a running one is returned), otherwise the account expires (`accounts.session_expired`). ' +
          'Accounts that are not `active` are answered as they are (`session_valid: false`), except re-authenticating ones waiting for a retry, whose retry starts now.',
        params: Type.Object({ id: Type.String({ maxLength: 64, description: 'The account id `acct_…`.' }) }),
        response: { 200: CheckResponse, ...problemResponses(401, 403, 404, 429) },
      },
    },
    async (request) => monitor.checkNow(request.principal.organization.id, request.params.id),
  );
};
