import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AttemptView } from '../../connect/attempts.js';
import { Type } from 'typebox';
import type { ConnectService } from '../../connect/service.js';
import type { PlatformName as Platform } from '../../db/schema.js';
import { capabilitiesOf } from '../../platforms/capabilities.js';
import { AttemptSchema, ReauthenticatedSchema, StartBodySchema, StartedSchema, SubmitBodySchema, SubmittedSchema } from '../connect-schemas.js';
import { problemResponses } from '../problem.js';
import type { IdempotencyClaim } from '../plugins/idempotency.js';
import { ApiError, validationError } from '../../lib/errors.js';
import { HeaderText, IdempotencyHeaders, PageOf, PageQuery } from '../schemas.js';
import { actorOf } from '../plugins/auth.js';

export interface AuthenticateRouteOptions {
  connect: ConnectService;
  platform: Platform;
  /** Counts a connect attempt of the organisation; throws the 429 past the hourly limit. */
  limitConnects: (orgId: string, reply?: FastifyReply) => Promise<void>;
  /** Fires when the server starts shutting down: long-polls and event streams answer at once. */
  closing: AbortSignal;
}

/** Aborts when the client goes away or `closing` fires. */
function whileWanted(request: FastifyRequest, closing: AbortSignal): AbortSignal {
  const gone = new AbortController();
  request.raw.once('close', () => gone.abort());
  return AbortSignal.any([gone.signal, closing]);
}

const ATTEMPT_STATES = ['pending', 'awaiting_mobile_session', 'needs_otp', 'needs_app_otp', 'needs_email', 'needs_face_otp', 'wrong_2fa_code_retry', 'completed_success', 'completed_failed'] as const;
const AttemptParams = Type.Object({ attempt_id: Type.String({ maxLength: 64 }) });
const AccountParams = Type.Object({ account_id: Type.String({ maxLength: 64 }) });
const SUBMITTED = 'OTP submitted successfully';
/** How long an EventSource waits before reconnecting. */
const SSE_RETRY_MS = 2000;

/**
 * Connect and re-authenticate routes of one platform (DESIGN 3 for OnlyFans at /api/authenticate,
 * 4 for Fansly at /api/fansly/authenticate). Thin: parse, call the connect service, serialise.
 */
export const authenticateRoutes: FastifyPluginAsyncTypebox<AuthenticateRouteOptions> = async (app, { connect, platform, limitConnects, closing }) => {
  const capabilities = capabilitiesOf(platform);
  const name = capabilities.displayName;
  const tags = [`Connect (${name})`];
  const read = { scope: 'accounts:read' as const };
  const write = { scope: 'accounts:write' as const };

  app.post(
    '/',
    {
      config: {
        ...write,
        idempotent: 'in-transaction',
        fieldCheck: (body) => connect.startBodyErrors(platform, body),
      },
      // After validation and the idempotency replay: only attempts that would start count.
      preHandler: async (request, reply) => limitConnects(request.principal.organization.id, reply),
      schema: {
        tags,
        summary: `Start connecting ${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name} account`,
        description:
          'Starts a login attempt and answers at once; follow it at `polling_url` (long-poll with `?wait=`, or Server-Sent Events at `/events`). ' +
          (capabilities.authTypes.length === 1
            ? `Log in with \`email\`${capabilities.loginByUsername ? ' or `username`' : ''} + \`password\`.`
            : 'Methods: `email_password`, `raw_data` (copied session cookies) and `mobile_app` (phone hand-off).'),
        headers: IdempotencyHeaders,
        body: StartBodySchema,
        response: { 200: StartedSchema, ...problemResponses(401, 403, 409, 422, 429) },
      },
    },
    async (request, reply) => {
      const start = (claim?: IdempotencyClaim) => connect.start(request.principal.organization.id, platform, request.body, { claim });
      // With an Idempotency-Key, the key is written with the attempt and its first job, in one transaction.
      return request.idempotency ? request.idempotency.run(reply, start) : start();
    },
  );

  app.get(
    '',
    {
      config: read,
      schema: {
        tags,
        summary: capabilities.connectPath === '/authenticate' ? "List the organisation's attempts" : `List the organisation's ${name} attempts`,
        description: 'Newest first, with cursor pagination; filter by account, state or your own reference.',
        querystring: Type.Object({
          ...PageQuery.properties,
          account_id: Type.Optional(Type.String({ maxLength: 64 })),
          state: Type.Optional(Type.Enum(ATTEMPT_STATES, { description: 'Only attempts in this state.' })),
          client_reference_id: Type.Optional(Type.String({ maxLength: 255 })),
        }),
        response: { 200: PageOf(AttemptSchema), ...problemResponses(401, 403, 422, 429) },
      },
    },
    // The OnlyFans path is the seed's: it lists every platform's attempts; the Fansly path only Fansly's.
    async (request) => connect.list(request.principal.organization.id, capabilities.connectPath === '/authenticate' ? null : platform, request.query),
  );

  app.get(
    '/:attempt_id',
    {
      config: read,
      schema: {
        tags,
        summary: 'Get an attempt (optionally long-polling for a change)',
        params: AttemptParams,
        querystring: Type.Object({
          wait: Type.Optional(Type.Integer({ minimum: 0, maximum: 30, description: 'Seconds to wait for a change (long-poll).' })),
          state: Type.Optional(Type.String({ maxLength: 40, description: 'The last state you saw; with `wait`, answers as soon as the state differs.' })),
        }),
        response: { 200: AttemptSchema, ...problemResponses(401, 403, 404, 422, 429) },
      },
    },
    async (request) => {
      const orgId = request.principal.organization.id;
      const { wait, state } = request.query;
      if (!wait) return connect.get(orgId, platform, request.params.attempt_id);
      return connect.wait(orgId, platform, request.params.attempt_id, wait, state, whileWanted(request, closing));
    },
  );

  app.get(
    '/:attempt_id/events',
    {
      // Manual: every client gets the stream whatever its Accept header, as before.
      sse: 'manual',
      config: read,
      schema: {
        tags,
        summary: 'Stream the attempt as Server-Sent Events',
        description:
          'Sends the attempt object (`event: attempt`) now and on every change, each with an `id:` (resume with `Last-Event-ID`) and keep-alive comments while nothing changes; the stream ends after a terminal state.',
        params: AttemptParams,
        response: {
          200: Type.String({
            description: 'text/event-stream: one `attempt` event per change.',
            examples: ['event: attempt\ndata: {"attempt_id":"auth_3Hn8QzL1vR6kW2pY9cT5mB","state":"needs_otp",…}\n\n'],
          }),
          ...problemResponses(401, 403, 404, 429),
        },
      },
    },
    async (request, reply) => {
      const orgId = request.principal.organization.id;
      const changes = connect.changes(orgId, platform, request.params.attempt_id, whileWanted(request, closing));
      const first = await changes.next(); // 404s before the stream starts
      // A stream is one long response: its connection is not reused, so a shutdown never waits on it.
      reply.header('connection', 'close').header('cache-control', 'no-store');
      // Each event's id is the attempt's updated_at: a client reconnecting with Last-Event-ID is not sent
      // the version it already has again.
      const resumedAt = reply.sse.lastEventId;
      const event = (attempt: AttemptView) => ({ id: attempt.updated_at, event: 'attempt', data: attempt, retry: SSE_RETRY_MS });
      async function* events() {
        if (!first.done && first.value.updated_at !== resumedAt) yield event(first.value);
        for await (const attempt of changes) yield event(attempt);
      }
      try {
        await reply.sse.send(events());
      } catch (error) {
        request.log.warn({ err: error }, 'attempt event stream failed');
      }
    },
  );

  app.put(
    '/:attempt_id',
    {
      config: write,
      schema: {
        tags,
        summary: 'Submit a code, or confirm the selfie check',
        description:
          'Send exactly one of `code` (4-16 characters) and `selfie_verification_completed: true`. 409 `attempt_not_awaiting_input` (with the attempt\'s `state`) when the state takes neither. ' +
          'Confirming the selfie asks the platform at once (waiting up to 10 s for its answer): 409 `selfie_not_completed` when the platform has not seen a completed selfie check — the attempt stays on `needs_face_otp` and the creator can finish it and confirm again.',
        params: AttemptParams,
        body: SubmitBodySchema,
        response: { 202: SubmittedSchema, ...problemResponses(401, 403, 404, 409, 422, 429) },
      },
    },
    async (request, reply) => {
      const { code, selfie_verification_completed: selfie } = request.body;
      if ((code === undefined) === (selfie === undefined)) {
        throw validationError([{ field: code === undefined ? 'code' : 'selfie_verification_completed', message: 'Send exactly one of code and selfie_verification_completed.' }]);
      }
      const orgId = request.principal.organization.id;
      const id = request.params.attempt_id;
      const attempt = code !== undefined ? await connect.submitCode(orgId, platform, id, code) : await connect.confirmSelfie(orgId, platform, id);
      return reply.code(202).send({ message: SUBMITTED, ...attempt });
    },
  );

  app.delete(
    '/:attempt_id',
    {
      config: write,
      schema: {
        tags,
        summary: 'Cancel an attempt',
        description: 'The attempt ends `completed_failed` with `error.code` `cancelled`.',
        params: AttemptParams,
        response: { 200: AttemptSchema, ...problemResponses(401, 403, 404, 409, 429) },
      },
    },
    async (request) => connect.cancel(request.principal.organization.id, platform, request.params.attempt_id),
  );

  // Where the platform sends its device-check email by itself, there is nothing to ask for.
  if (!capabilities.emailCodeSentAtLogin) {
    app.post(
      '/:attempt_id/send-email-to-creator',
      {
        config: write,
        schema: {
          tags,
          summary: 'Ask the platform to send the device-check email',
          description:
            'Only in state `needs_email` (409 `attempt_not_awaiting_email` naming the state otherwise). The attempt then shows `email_sent_at`, its `progress` says the email went out and `next_actions` become `["submit_code","send_email_to_creator"]`: ' +
            'submit the code the creator received. Asking again is allowed 60 s after the last request; earlier is a 429 `email_recently_sent` with `Retry-After` / `retryAfterSec`.',
          params: AttemptParams,
          response: { 202: SubmittedSchema, ...problemResponses(401, 403, 404, 409, 429) },
        },
      },
      async (request, reply) => {
        const attempt = await connect.requestEmail(request.principal.organization.id, platform, request.params.attempt_id);
        return reply.code(202).send({ message: 'Email requested successfully', ...attempt });
      },
    );
  }

  app.put(
    '/:account_id/credentials',
    {
      config: { ...write, fieldCheck: (body) => connect.startBodyErrors(platform, body) },
      schema: {
        tags,
        summary: 'Replace the credentials of an account and re-authenticate at once',
        description:
          'Same body as starting; switching method is allowed. Cancels running attempts; the account answers 503 `account_reauthenticating` until this attempt ends. ' +
          'If the new credentials belong to another platform user the attempt fails `wrong_user` and the previous credentials stay.',
        params: AccountParams,
        body: StartBodySchema,
        response: { 200: StartedSchema, ...problemResponses(401, 403, 404, 422, 429) },
      },
    },
    async (request) => connect.updateCredentials(request.principal.organization.id, platform, request.params.account_id, request.body, actorOf(request)),
  );

  app.post(
    '/:account_id/reauthenticate',
    {
      config: write,
      schema: {
        tags,
        summary: 'Re-authenticate with the stored credentials',
        description:
          'Single-flight: a re-authentication already running is returned. 412 `no_stored_credentials` without stored credentials; 400 `already_authenticated` while the session is valid, unless `?force=true`.',
        params: AccountParams,
        querystring: Type.Object({ force: Type.Optional(Type.Boolean({ description: 'Re-authenticate even though the session is valid.' })) }),
        response: { 200: ReauthenticatedSchema, ...problemResponses(400, 401, 403, 404, 412, 429) },
      },
    },
    async (request) => connect.reauthenticate(request.principal.organization.id, platform, request.params.account_id, request.query.force ?? false),
  );
};

/** Hand-offs one client address may post per minute: a phone posts one. */
export const MOBILE_HANDOFFS_PER_MINUTE = 30;

/** The phone's hand-off (DESIGN 6): no API key, the single-use code is the credential. */
export const mobileAuthRoutes: FastifyPluginAsyncTypebox<{ connect: ConnectService }> = async (app, { connect }) => {
  app.post(
    '/mobile-auth/:code',
    {
      // Per client IP as the trusted proxies report it (FANGATE_TRUST_PROXY), so X-Forwarded-For cannot rotate it.
      config: { public: true, rateLimit: { max: MOBILE_HANDOFFS_PER_MINUTE, timeWindow: 60_000, keyGenerator: (request) => `mobile:${request.ip}` } },
      schema: {
        tags: ['Connect (OnlyFans)'],
        summary: 'Complete a mobile_app attempt with the session from the phone',
        description: 'Called by the companion app with the code of `fangate://auth/<code>` (valid 10 minutes, single use). The session is validated like an import.',
        security: [],
        params: Type.Object({ code: Type.String({ minLength: 20, maxLength: 128 }) }),
        body: Type.Object(
          {
            auth_id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }),
            cookies: HeaderText({ maxLength: 16384 }),
            xbc: HeaderText({ maxLength: 512 }),
            user_agent: HeaderText({ maxLength: 1024 }),
          },
          {
            additionalProperties: false,
            examples: [{ auth_id: '438518664811', cookies: 'auth_id=438518664811; sess=7dfa347913c31bedae6c195de2863535; fp=8c486fbe38fb36729ab25071f543e7f3', xbc: '186c7d50c4d01030c3bad0175c3ab00dd5dbbf6b', user_agent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148' }],
          },
        ),
        response: {
          200: Type.Object(
            { status: Type.Enum(['connected', 'pending']), attempt_id: Type.String(), account_id: Type.Union([Type.String(), Type.Null()]) },
            {
              description: '`pending` when validation takes longer than the wait; the attempt finishes on its own.',
              examples: [{ status: 'connected', attempt_id: 'auth_3Hn8QzL1vR6kW2pY9cT5mB', account_id: 'acct_7QmV2c9XkT4rB1nH8sL3dW' }],
            },
          ),
          ...problemResponses(400, 404, 422, 429),
        },
      },
    },
    async (request) => {
      const attempt = await connect.completeMobileSession(request.params.code, request.body);
      // A rejected session is answered like a rejected import.
      if (attempt.error) throw new ApiError(400, attempt.error.code, attempt.error.message);
      return { status: attempt.state === 'completed_success' ? ('connected' as const) : ('pending' as const), attempt_id: attempt.attempt_id, account_id: attempt.account_id };
    },
  );
};
