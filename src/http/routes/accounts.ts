import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { type AccountService, MAX_HEALTH_CHECK_INTERVAL_SEC, MIN_HEALTH_CHECK_INTERVAL_SEC } from '../../accounts/service.js';
import { AccountSchema, CustomProxySchema } from '../connect-schemas.js';
import { problemResponses } from '../problem.js';
import { Body, HeaderText, IdempotencyHeaders, PageOf, PageQuery } from '../schemas.js';
import { actorOf } from '../plugins/auth.js';

/** Accounts (DESIGN 5) and the Access API's `/me` (DESIGN 10). Thin: parse, call the accounts service, serialise. */

const tags = ['Accounts'];
const read = { scope: 'accounts:read' as const };
const write = { scope: 'accounts:write' as const };

const AccountParams = Type.Object({ id: Type.String({ maxLength: 64, description: 'The account id `acct_…`.' }) });
const proxyCountry = Type.String({ pattern: '^[A-Za-z]{2}$', description: "A country of the operator's pool (FANGATE_PROXY_POOL), e.g. `us` or `uk`.", examples: ['us'] });
const cookie = HeaderText({
  maxLength: 16384,
  description: "The browser's full cookie string `a=b; c=d`; must hold `auth_id`, `sess` and `fp`. Stored encrypted; never returned.",
  examples: ['auth_id=438518664811; sess=7dfa347913c31bedae6c195de2863535; fp=8c486fbe38fb36729ab25071f543e7f3'],
});
const userAgent = HeaderText({ maxLength: 1024, description: 'The exact user agent of the browser the session was made in.', examples: ['Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Safari/605.1.15'] });
const xbc = HeaderText({ maxLength: 512, description: 'The `x-bc` header value of that browser, when you have it.' });

const ListQuery = Type.Object({
  ...PageQuery.properties,
  status: Type.Optional(Type.Enum(['active', 'reauthenticating', 'awaiting_2fa', 'expired'], { description: 'Only accounts in this status.' })),
  platform: Type.Optional(Type.Enum(['onlyfans', 'fansly'], { description: 'Only accounts of this platform.' })),
  client_reference_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Only accounts with this `client_reference_id`.' })),
  username: Type.Optional(Type.String({ minLength: 1, maxLength: 320, description: 'Only accounts of this platform username (case-insensitive, a leading `@` is ignored).' })),
});

const PatchBody = Body(
  {
    display_name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    client_reference_id: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 255 }), Type.Null()], { description: 'Your own id; `null` clears it.' })),
    proxyCountry: Type.Optional(Type.Union([proxyCountry, Type.Null()], { description: 'Move the account to a proxy of this country; `null`: no proxy. Not together with `customProxy`.' })),
    customProxy: Type.Optional(Type.Union([CustomProxySchema, Type.Null()], { description: 'Move the account to your own proxy; `null`: no proxy. Not together with `proxyCountry`.' })),
    health_check_interval_sec: Type.Optional(
      Type.Integer({
        minimum: MIN_HEALTH_CHECK_INTERVAL_SEC,
        maximum: MAX_HEALTH_CHECK_INTERVAL_SEC,
        description: `How often the session is checked, in seconds (${MIN_HEALTH_CHECK_INTERVAL_SEC}-${MAX_HEALTH_CHECK_INTERVAL_SEC}; default 900).`,
      }),
    ),
  },
  {
    examples: [
      { display_name: 'Jane (main)', client_reference_id: 'creator-42' },
      { customProxy: { protocol: 'socks5', host: 'proxy.example.net', port: 1080, username: 'u', password: 'p' } },
      { proxyCountry: 'us', health_check_interval_sec: 300 },
    ],
  },
);

const ImportBodySchema = Body(
  {
    cookie,
    userAgent,
    xbc: Type.Optional(xbc),
    clientReferenceId: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Your own id, echoed on the account and every webhook.' })),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Display name; defaults to the platform username.' })),
    proxyCountry: Type.Optional(proxyCountry),
    customProxy: Type.Optional(CustomProxySchema),
  },
  {
    examples: [
      {
        cookie: 'auth_id=438518664811; sess=7dfa347913c31bedae6c195de2863535; fp=8c486fbe38fb36729ab25071f543e7f3',
        userAgent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Safari/605.1.15',
        xbc: '186c7d50c4d01030c3bad0175c3ab00dd5dbbf6b',
        clientReferenceId: 'creator-42',
        name: 'Jane',
      },
    ],
  },
);

const RotateBodySchema = Body(
  { cookie, userAgent, xbc: Type.Optional(xbc) },
  {
    examples: [
      {
        cookie: 'auth_id=438518664811; sess=0b4e5d7c9a1f2e3d4c5b6a7980f1e2d3; fp=8c486fbe38fb36729ab25071f543e7f3',
        userAgent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Safari/605.1.15',
      },
    ],
  },
);

const PlatformUserSchema = Type.Object(
  { id: Type.String(), username: Type.String(), name: Type.String(), avatar: Type.Union([Type.String(), Type.Null()]) },
  { examples: [{ id: '438518664811', username: 'jane', name: 'Jane', avatar: 'http://127.0.0.1:8081/avatars/438518664811.svg' }] },
);

export const accountRoutes: FastifyPluginAsyncTypebox<{ accounts: AccountService }> = async (app, { accounts }) => {
  app.get(
    '/accounts',
    {
      config: read,
      schema: {
        tags,
        summary: 'List connected accounts',
        description: 'Newest first, cursor-paginated (`limit`, `cursor` = the previous `next_cursor`). Filters combine (AND).',
        querystring: ListQuery,
        response: { 200: PageOf(AccountSchema), ...problemResponses(401, 403, 422, 429) },
      },
    },
    async (request) => accounts.list(request.principal.organization.id, request.query),
  );

  // Static `import` routes: find-my-way prefers the static segment over `/accounts/:id`.
  app.post(
    '/accounts/import',
    {
      config: { ...write, idempotent: true },
      schema: {
        tags,
        summary: 'Import a session copied from a browser',
        description:
          "Validates the session against the platform synchronously (through the chosen proxy, with the given user agent) and answers the new account (`imported: true`, `auth_type: raw_data`, no stored credentials). " +
          '422 when the cookie lacks `auth_id`, `sess` or `fp`; 400 `session_invalid` when the platform rejects the session; 409 `account_already_connected` (with `existing_account_id`) when this platform user is already an account; ' +
          '502 `upstream_error` when the platform or the proxy cannot be reached.',
        headers: IdempotencyHeaders,
        body: ImportBodySchema,
        response: { 201: AccountSchema, ...problemResponses(400, 401, 403, 409, 422, 429, 502) },
      },
    },
    async (request, reply) => reply.code(201).send(await accounts.importAccount(request.principal.organization.id, request.body, actorOf(request))),
  );

  app.patch(
    '/accounts/import/:id',
    {
      config: write,
      schema: {
        tags,
        summary: 'Rotate the session of an imported account',
        description:
          'Replaces the session in place (same id) after validating it; the account is `active` again. 409 `wrong_user` when the cookie belongs to another platform user; ' +
          '400 `not_imported` for accounts connected by login (use PUT /api/authenticate/{account_id}/credentials); 400 `session_invalid` when the platform rejects the session.',
        params: AccountParams,
        body: RotateBodySchema,
        response: { 200: AccountSchema, ...problemResponses(400, 401, 403, 404, 409, 422, 429, 502) },
      },
    },
    async (request) => accounts.rotateImport(request.principal.organization.id, request.params.id, request.body, actorOf(request)),
  );

  app.get(
    '/accounts/:id',
    {
      config: read,
      schema: { tags, summary: 'Get an account', params: AccountParams, response: { 200: AccountSchema, ...problemResponses(401, 403, 404, 429) } },
    },
    async (request) => accounts.get(request.principal.organization.id, request.params.id),
  );

  app.patch(
    '/accounts/:id',
    {
      config: write,
      schema: {
        tags,
        summary: 'Change an account',
        description:
          'Send only what changes. `proxyCountry` / `customProxy` follow the rules of connecting (one of them; proxy passwords are stored encrypted and never returned). ' +
          'Emits `accounts.updated` when something changed.',
        params: AccountParams,
        body: PatchBody,
        response: { 200: AccountSchema, ...problemResponses(401, 403, 404, 422, 429) },
      },
    },
    async (request) => accounts.patch(request.principal.organization.id, request.params.id, request.body),
  );

  app.delete(
    '/accounts/:id',
    {
      config: write,
      schema: {
        tags,
        summary: 'Disconnect and delete an account',
        description:
          'Cancels its running attempts, logs the session out on the platform where it can, erases every stored secret and deletes the account; emits `accounts.disconnected`. The id then answers 404.',
        params: AccountParams,
        response: { 204: Type.Null({ description: 'Deleted.' }), ...problemResponses(401, 403, 404, 429) },
      },
    },
    async (request, reply) => {
      await accounts.remove(request.principal.organization.id, request.params.id, actorOf(request));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/accounts/:id/invalidate',
    {
      config: write,
      schema: {
        tags,
        summary: 'Mark the session of an account expired',
        description:
          'Status `expired` (`expired_at` set), running re-authentications are cancelled and the Access API answers 410 `account_expired`. The record stays: reconnect it with PUT /api/authenticate/{account_id}/credentials or re-authenticate. Emits `accounts.session_expired`.',
        params: AccountParams,
        response: { 200: AccountSchema, ...problemResponses(401, 403, 404, 429) },
      },
    },
    async (request) => accounts.invalidate(request.principal.organization.id, request.params.id, actorOf(request)),
  );
};

/** Access API (DESIGN 10): calls to the platform with the account's stored session. */
export const accessRoutes: FastifyPluginAsyncTypebox<{ accounts: AccountService }> = async (app, { accounts }) => {
  app.get(
    '/:account_id/me',
    {
      config: read,
      schema: {
        tags: ['Access API'],
        summary: 'The platform user of the account',
        description:
          "Asks the platform with the account's session, user agent and proxy; cookies the platform rotates are stored back. " +
          '503 `account_reauthenticating` (with `Retry-After`) while the account re-authenticates; 410 `account_expired` when it expired; ' +
          '502 `upstream_error` with `upstreamStatus` when the platform fails or refuses the session (401: the account is queued for an immediate health check).',
        params: Type.Object({ account_id: Type.String({ maxLength: 64, description: 'The account id `acct_…`.' }) }),
        response: { 200: PlatformUserSchema, ...problemResponses(401, 403, 404, 410, 429, 502, 503) },
      },
    },
    async (request) => accounts.me(request.principal.organization.id, request.params.account_id),
  );
};
