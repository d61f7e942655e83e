import type { Actor } from '../../lib/audit.js';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Scope } from '../../orgs/scopes.js';
import type { OrgService } from '../../orgs/service.js';
import { problemResponses } from '../problem.js';
import { ApiError, notFound } from '../../lib/errors.js';
import { Body } from '../schemas.js';
import type { RotationReport } from '../../vault/rotate.js';
import { CreatedApiKeySchema, NewApiKeyBody, serializeCreatedKey } from './api-keys.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

/**
 * Operator API, enabled by FANGATE_ADMIN_TOKEN: organisations and their first keys. An embedded server
 * also accepts its local admin token (kept in the data dir, mode 0600), from loopback only, so that
 * `fangate keys create` works while it runs.
 */
export const adminRoutes: FastifyPluginAsyncTypebox<{ orgs: OrgService; adminToken?: string; localAdminToken?: string; rotateVault: (actor: Actor) => Promise<RotationReport> }> = async (
  app,
  { orgs, adminToken, localAdminToken, rotateVault },
) => {
  const actors = new WeakMap<object, Actor>();
  const expected = adminToken ? digest(adminToken) : undefined;
  const local = localAdminToken ? digest(localAdminToken) : undefined;
  app.addHook('onRequest', async (request) => {
    const token = digest(/^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')?.[1] ?? '');
    const admin = expected !== undefined && timingSafeEqual(token, expected);
    const localAdmin = local !== undefined && timingSafeEqual(token, local) && LOOPBACK.test(request.socket.remoteAddress ?? '');
    if (!admin && !localAdmin) throw new ApiError(401, 'unauthorized', 'Send the admin token as `Authorization: Bearer …`.');
    actors.set(request, { type: 'admin', id: admin ? 'admin_token' : 'local_admin_token' });
  });

  const OrgSchema = Type.Object({ id: Type.String(), name: Type.String() }, { examples: [{ id: 'org_3kT9xQ2mB7vN1cR5wL8pZd', name: 'acme' }] });
  const security = [{ adminToken: [] }];

  app.post(
    '/orgs',
    {
      schema: {
        tags: ['Admin'],
        summary: 'Create an organisation',
        security,
        body: Body({ name: Type.String({ minLength: 1, maxLength: 100, pattern: '^\\S(.*\\S)?$', examples: ['acme'] }) }, { examples: [{ name: 'acme' }] }),
        response: { 201: OrgSchema, ...problemResponses(401, 409, 422) },
      },
    },
    async (request, reply) => reply.code(201).send(await orgs.createOrganization(request.body.name)),
  );

  app.get(
    '/orgs',
    {
      schema: {
        tags: ['Admin'],
        summary: 'Find an organisation by name',
        security,
        querystring: Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }) }),
        response: { 200: Type.Object({ data: Type.Array(OrgSchema) }, { examples: [{ data: [{ id: 'org_3kT9xQ2mB7vN1cR5wL8pZd', name: 'acme' }] }] }), ...problemResponses(401, 422) },
      },
    },
    async (request) => {
      const found = await orgs.findOrganization({ name: request.query.name });
      return { data: found ? [found] : [] };
    },
  );

  app.post(
    '/orgs/:id/api-keys',
    {
      schema: {
        tags: ['Admin'],
        summary: "Create an API key in an organisation (all scopes by default)",
        security,
        params: Type.Object({ id: Type.String() }),
        body: Type.Optional(NewApiKeyBody),
        response: { 201: CreatedApiKeySchema, ...problemResponses(401, 404, 422) },
      },
    },
    async (request, reply) => {
      const org = await orgs.findOrganization({ id: request.params.id });
      if (!org) throw notFound('Organisation');
      const created = await orgs.createApiKey(org.id, { name: request.body?.name, scopes: request.body?.scopes as Scope[] | undefined }, actors.get(request)!);
      return reply.code(201).send(serializeCreatedKey(created));
    },
  );

  app.post(
    '/vault/rotate',
    {
      schema: {
        tags: ['Admin'],
        summary: 'Re-encrypt every secret under the first key of FANGATE_MASTER_KEY',
        description: 'The online equivalent of `fangate vault rotate`, for embedded mode where a second process cannot open the database.',
        security,
        response: {
          200: Type.Object(
            { rotated: Type.Integer(), perColumn: Type.Record(Type.String(), Type.Integer()) },
            { examples: [{ rotated: 3, perColumn: { 'idempotency_keys.response_enc': 3 } }] },
          ),
          ...problemResponses(401),
        },
      },
    },
    async (request) => rotateVault(actors.get(request)!),
  );
};
