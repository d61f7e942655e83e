import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ALL_SCOPES, type Scope } from '../../orgs/scopes.js';
import type { ApiKeyInfo, CreatedApiKey, OrgService } from '../../orgs/service.js';
import { problemResponses } from '../problem.js';
import { ApiError, notFound } from '../../lib/errors.js';
import { Body, IdempotencyHeaders, PageOf, PageQuery, Timestamp } from '../schemas.js';
import { actorOf } from '../plugins/auth.js';

export const ScopeSchema = Type.Enum(ALL_SCOPES);

export const NewApiKeyBody = Body(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, examples: ['CRM backend'] })),
    scopes: Type.Optional(Type.Array(ScopeSchema, { minItems: 1, uniqueItems: true, description: 'Defaults to every scope.' })),
  },
  { examples: [{ name: 'CRM backend', scopes: ['accounts:read', 'accounts:write'] }] },
);

export const CreatedApiKeySchema = Type.Object(
  {
    id: Type.String(),
    key: Type.String({ description: 'The API key. Shown only in this response: store it now.' }),
    name: Type.String(),
    scopes: Type.Array(ScopeSchema),
  },
  { examples: [{ id: 'key_8Jd2kQ0xWm3bT5nR7pLs1v', key: 'fg_Yx4…', name: 'CRM backend', scopes: [...ALL_SCOPES] }] },
);

const ApiKeySchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    prefix: Type.String({ description: 'First characters of the key, to tell keys apart.' }),
    scopes: Type.Array(ScopeSchema),
    created_at: Timestamp,
    last_used_at: Type.Union([Timestamp, Type.Null()]),
  },
  {
    examples: [
      { id: 'key_8Jd2kQ0xWm3bT5nR7pLs1v', name: 'CRM backend', prefix: 'fg_Yx4mQ2b', scopes: ['accounts:read'], created_at: '2026-11-22T19:00:00.000Z', last_used_at: null },
    ],
  },
);

const serializeKey = (k: ApiKeyInfo) => ({
  id: k.id,
  name: k.name,
  prefix: k.prefix,
  scopes: k.scopes,
  created_at: k.created_at.toISOString(),
  last_used_at: k.last_used_at?.toISOString() ?? null,
});

export const serializeCreatedKey = (k: CreatedApiKey) => ({ id: k.id, key: k.key, name: k.name, scopes: k.scopes });

/** Self-service keys and the caller's identity. */
export const apiKeyRoutes: FastifyPluginAsyncTypebox<{ orgs: OrgService }> = async (app, { orgs }) => {
  app.get(
    '/whoami',
    {
      schema: {
        tags: ['API keys'],
        summary: "The calling key and its organisation",
        response: {
          200: Type.Object(
            {
              organization: Type.Object({ id: Type.String(), name: Type.String() }),
              api_key: Type.Object({ id: Type.String(), name: Type.String(), scopes: Type.Array(ScopeSchema) }),
            },
            { examples: [{ organization: { id: 'org_3kT9xQ2mB7vN1cR5wL8pZd', name: 'default' }, api_key: { id: 'key_8Jd2kQ0xWm3bT5nR7pLs1v', name: 'bootstrap', scopes: [...ALL_SCOPES] } }] },
          ),
          ...problemResponses(401, 429),
        },
      },
    },
    async (request) => {
      const { organization, apiKey } = request.principal;
      return { organization, api_key: { id: apiKey.id, name: apiKey.name, scopes: apiKey.scopes } };
    },
  );

  app.get(
    '/api-keys',
    {
      config: { scope: 'keys:write' },
      schema: {
        tags: ['API keys'],
        summary: "List the organisation's active API keys",
        querystring: PageQuery,
        response: { 200: PageOf(ApiKeySchema), ...problemResponses(401, 403, 422, 429) },
      },
    },
    async (request) => {
      const page = await orgs.listApiKeys(request.principal.organization.id, request.query);
      return { ...page, data: page.data.map(serializeKey) };
    },
  );

  app.post(
    '/api-keys',
    {
      config: { scope: 'keys:write', idempotent: true },
      schema: {
        tags: ['API keys'],
        summary: 'Create an API key',
        description: 'The new key can hold only scopes the calling key holds. The key is returned once.',
        headers: IdempotencyHeaders,
        body: NewApiKeyBody,
        response: { 201: CreatedApiKeySchema, ...problemResponses(401, 403, 422, 429) },
      },
    },
    async (request, reply) => {
      const granted = request.principal.apiKey.scopes;
      const scopes = (request.body?.scopes ?? granted) as Scope[];
      const missing = scopes.filter((s) => !granted.includes(s));
      if (missing.length > 0) throw new ApiError(403, 'forbidden', `A key cannot grant scopes it lacks: ${missing.join(', ')}.`);
      const created = await orgs.createApiKey(request.principal.organization.id, { name: request.body?.name, scopes }, actorOf(request));
      return reply.code(201).send(serializeCreatedKey(created));
    },
  );

  app.delete(
    '/api-keys/:id',
    {
      config: { scope: 'keys:write' },
      schema: {
        tags: ['API keys'],
        summary: 'Revoke an API key (effective immediately on every node)',
        description: 'A key can revoke only keys whose scopes it holds all of (403 `forbidden` otherwise), itself included.',
        params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
        response: { 204: Type.Null({ description: 'Revoked.' }), ...problemResponses(401, 403, 404, 429) },
      },
    },
    async (request, reply) => {
      const outcome = await orgs.revokeApiKey(request.principal.organization.id, request.params.id, actorOf(request), request.principal.apiKey.scopes);
      if (outcome === 'not_found') throw notFound('API key');
      if (outcome === 'forbidden') throw new ApiError(403, 'forbidden', 'A key can revoke only keys whose scopes it holds: this key lacks some of that key\'s scopes.');
      return reply.code(204).send(null);
    },
  );
};
