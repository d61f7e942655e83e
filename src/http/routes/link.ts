import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { LinkInitBody, LinkService } from '../../link/service.js';
import { named } from '../components.js';
import { problemResponses } from '../problem.js';
import { Body, IdempotencyHeaders, Timestamp } from '../schemas.js';

/** Link sessions (DESIGN 6): create a hosted connect page, read it, cancel it. Thin: parse, call the link service, serialise. */

const tags = ['Link'];
const LinkParams = Type.Object({ id: Type.String({ maxLength: 64, description: 'The link id `link_…`.' }) });

const InitBody = Body(
  {
    redirectUrl: Type.String({
      minLength: 1,
      maxLength: 2048,
      description: 'Where the page sends the creator at the end, with `status=success&connection_id=…&client_reference_id=…`, `status=cancelled&step=…` or `status=error&error_code=…`. `https://`, or `http://` on localhost, 127.0.0.1 or [::1]. Its origin is the only one allowed to embed the page.',
      examples: ['https://app.example.com/creators/connected'],
    }),
    clientReferenceId: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'Your own id, echoed on the attempt, the account, the redirect and every webhook.' })),
    connectionId: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'Reconnect this account (`acct_…`): the page re-authenticates it; another platform user fails `wrong_user`.' })),
    platform: Type.Optional(Type.Enum(['onlyfans', 'fansly'], { description: 'Default `onlyfans` (for a reconnect: the account\'s platform).' })),
    proxyCountry: Type.Optional(Type.String({ pattern: '^[A-Za-z]{2}$', description: "Connect through a proxy of this country of the operator's pool.", examples: ['us'] })),
    theme: Type.Optional(Type.Enum(['light', 'dark', 'auto'], { description: 'Page theme; `auto` (default) follows the device.' })),
  },
  { examples: [{ redirectUrl: 'https://app.example.com/creators/connected', clientReferenceId: 'creator-42', theme: 'auto' }] },
);

const InitResponse = Type.Object(
  {
    id: Type.String({ description: 'The link id `link_…`.' }),
    url: Type.String({ description: 'The page to send the creator to (or open with link.js). It holds the link\'s secret token: single use, 60 minutes.' }),
    expiresAt: Timestamp,
  },
  { examples: [{ id: 'link_5tQ1xV8mK2cN7bR4wZ9pLd', url: 'https://fangate.example.com/link/Xc1…', expiresAt: '2026-11-22T20:00:00.000Z' }] },
);

export const LinkSchema = named('LinkSession', Type.Object(
  {
    id: Type.String(),
    status: Type.Enum(['initialized', 'pending', 'awaiting_2fa', 'completed', 'failed', 'expired', 'cancelled'], {
      description: '`failed`: the last attempt failed (the creator may still try again on the page until it expires).',
    }),
    platform: Type.Enum(['onlyfans', 'fansly']),
    client_reference_id: Type.Union([Type.String(), Type.Null()]),
    connection_id: Type.Union([Type.String(), Type.Null()], { description: 'The connected (or reconnected) account.' }),
    attempt_id: Type.Union([Type.String(), Type.Null()], { description: 'The attempt the page follows now.' }),
    error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
    redirect_url: Type.String(),
    theme: Type.Enum(['light', 'dark', 'auto']),
    created_at: Timestamp,
    updated_at: Timestamp,
    expires_at: Timestamp,
    completed_at: Type.Union([Timestamp, Type.Null()]),
  },
  {
    examples: [
      {
        id: 'link_5tQ1xV8mK2cN7bR4wZ9pLd',
        status: 'completed',
        platform: 'onlyfans',
        client_reference_id: 'creator-42',
        connection_id: 'acct_7QmV2c9XkT4rB1nH8sL3dW',
        attempt_id: 'auth_3Hn8QzL1vR6kW2pY9cT5mB',
        error: null,
        redirect_url: 'https://app.example.com/creators/connected',
        theme: 'auto',
        created_at: '2026-11-22T19:00:00.000Z',
        updated_at: '2026-11-22T19:02:10.000Z',
        expires_at: '2026-11-22T20:00:00.000Z',
        completed_at: '2026-11-22T19:02:10.000Z',
      },
    ],
  },
));

export const linkRoutes: FastifyPluginAsyncTypebox<{ link: LinkService }> = async (app, { link }) => {
  app.post(
    '/link/init',
    {
      config: { scope: 'accounts:write', idempotent: true },
      schema: {
        tags,
        summary: 'Create a hosted connect page (link)',
        description: 'Answers the page `url` to send the creator to (or to open with `FanGateLink.open` from `/link.js`). 404 when `connectionId` is not an account of your organisation.',
        headers: IdempotencyHeaders,
        body: InitBody,
        response: { 201: InitResponse, ...problemResponses(401, 403, 404, 422, 429) },
      },
    },
    async (request, reply) => reply.code(201).send(await link.init(request.principal.organization.id, request.body as LinkInitBody)),
  );

  app.get(
    '/link/:id',
    {
      config: { scope: 'accounts:read' },
      schema: { tags, summary: 'Get a link', params: LinkParams, response: { 200: LinkSchema, ...problemResponses(401, 403, 404, 429) } },
    },
    async (request) => link.get(request.principal.organization.id, request.params.id),
  );

  app.delete(
    '/link/:id',
    {
      config: { scope: 'accounts:write' },
      schema: {
        tags,
        summary: 'Cancel a link',
        description: 'Cancels the link and its running attempt; the page then accepts nothing. A link that already ended is returned unchanged.',
        params: LinkParams,
        response: { 200: LinkSchema, ...problemResponses(401, 403, 404, 429) },
      },
    },
    async (request) => link.cancel(request.principal.organization.id, request.params.id),
  );
};
