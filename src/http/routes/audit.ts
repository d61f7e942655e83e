import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AUDIT_ACTIONS, type AuditLog } from '../../audit/service.js';
import { problemResponses } from '../problem.js';
import { PageOf, PageQuery, Timestamp } from '../schemas.js';

export const AuditEventSchema = Type.Object(
  {
    id: Type.String({ description: '`aud_…`' }),
    actor: Type.Object({
      type: Type.Enum(['api_key', 'admin', 'system']),
      id: Type.Union([Type.String(), Type.Null()], {
        description: 'The API key id (`key_…`) for `api_key`; `admin_token`, `local_admin_token` or `cli` for `admin`; null for `system`.',
      }),
    }),
    action: Type.Enum([...AUDIT_ACTIONS]),
    target_type: Type.Enum(['account', 'api_key', 'webhook_endpoint', 'vault']),
    target_id: Type.Union([Type.String(), Type.Null()]),
    created_at: Timestamp,
    details: Type.Record(Type.String(), Type.Unknown(), { description: 'Facts about the change (how, which fields); never a secret.' }),
  },
  {
    examples: [
      {
        id: 'aud_4Rt8mK2pQ7vX1nB5wL9cZe',
        actor: { type: 'api_key', id: 'key_8Jd2kQ0xWm3bT5nR7pLs1v' },
        action: 'account.deleted',
        target_type: 'account',
        target_id: 'acct_2Vb7nQ4kX9mT1pR6sL3wYh',
        created_at: '2026-11-22T19:00:00.000Z',
        details: { platform: 'onlyfans', username: 'alice' },
      },
    ],
  },
);

/** `GET /api/audit-events` (DESIGN 11): who did what, in the key's organisation. */
export const auditRoutes: FastifyPluginAsyncTypebox<{ audit: AuditLog }> = async (app, { audit }) => {
  app.get(
    '/audit-events',
    {
      config: { scope: 'audit:read' },
      schema: {
        tags: ['Audit log'],
        summary: "List the organisation's audit events",
        description:
          'Newest first, cursor-paginated; filter by `action` and `target_id`. Records account create/delete/credentials update/invalidate, API key create/revoke, ' +
          'webhook endpoint create/update/delete/secret rotation and vault rotation (the latter concerns every organisation). Never holds a secret. Scope `audit:read`.',
        querystring: Type.Object({
          ...PageQuery.properties,
          action: Type.Optional(Type.Enum([...AUDIT_ACTIONS])),
          target_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
        }),
        response: { 200: PageOf(AuditEventSchema), ...problemResponses(401, 403, 422, 429) },
      },
    },
    async (request) => audit.list(request.principal.organization.id, request.query as never),
  );
};
