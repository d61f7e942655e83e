import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { notFound } from '../../lib/errors.js';
import { EVENT_NAMES, examplePayload, isEventName } from '../../webhooks/catalog.js';
import type { WebhookService } from '../../webhooks/service.js';
import { named } from '../components.js';
import { problemResponses } from '../problem.js';
import { Body, IdempotencyHeaders, PageOf, PageQuery, Timestamp } from '../schemas.js';
import { actorOf } from '../plugins/auth.js';

/** Webhook endpoints and their deliveries (DESIGN 9). Thin: parse, call the webhook service, serialise. */

const tags = ['Webhooks'];
const read = { scope: 'webhooks:read' as const };
const write = { scope: 'webhooks:write' as const };
// null first: with type coercion on, a string branch tried first would turn null into "".
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([Type.Null(), schema]);

const EndpointParams = Type.Object({ id: Type.String({ maxLength: 64, description: 'The endpoint id `wh_…`.' }) });
const DeliveryParams = Type.Object({
  id: Type.String({ maxLength: 64, description: 'The endpoint id `wh_…`.' }),
  delivery_id: Type.String({ maxLength: 64, description: 'The delivery id `whd_…`.' }),
});

const EventNameSchema = Type.Enum(EVENT_NAMES as [string, ...string[]], { description: 'An event of the catalog (GET /api/webhooks/events).' });
const endpointUrl = Type.String({
  minLength: 1,
  maxLength: 2048,
  description:
    'Where events are POSTed: an http(s) URL whose host resolves to public addresses only (private, loopback, link-local, CGNAT and cloud-metadata addresses are refused unless FANGATE_ALLOW_PRIVATE_WEBHOOKS=true).',
  examples: ['https://crm.example.com/hooks/fangate'],
});
const events = Type.Array(EventNameSchema, { maxItems: 50, description: 'Events this endpoint receives; empty: every event.' });
const accountScope = Type.Enum(['global', 'accounts'], { description: '`global`: events of every account; `accounts`: only those of `account_ids`.' });
const accountIds = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 100, description: 'With `account_scope: "accounts"`: accounts of your organisation (1-100).' });
const description = Type.String({ maxLength: 500, examples: ['CRM production'] });

const endpointExample = {
  id: 'wh_2bX9kLm4QpR7sT1vW3yZ5a',
  endpoint_url: 'https://crm.example.com/hooks/fangate',
  events: ['accounts.connected', 'accounts.session_expired'],
  account_scope: 'global',
  account_ids: [],
  enabled: true,
  disabled_reason: null,
  description: 'CRM production',
  created_at: '2026-11-22T19:00:00.000Z',
  updated_at: '2026-11-22T19:00:00.000Z',
};
const endpointProperties = {
  id: Type.String(),
  endpoint_url: Type.String(),
  events: Type.Array(Type.String(), { description: 'Empty: every event.' }),
  account_scope: accountScope,
  account_ids: Type.Array(Type.String()),
  enabled: Type.Boolean(),
  disabled_reason: Nullable(
    Type.Enum(['endpoint_gone', 'failing_for_5_days'], {
      description: 'Why FanGate disabled the endpoint: it answered `410 Gone`, or every try failed for 5 days. Cleared when you enable it again.',
    }),
  ),
  description: Nullable(Type.String()),
  created_at: Timestamp,
  updated_at: Timestamp,
};
const EndpointSchema = named('WebhookEndpoint', Type.Object(endpointProperties, { description: 'A webhook endpoint; never carries its secret.', examples: [endpointExample] }));
const signingSecret = Type.String({ description: 'The signing secret (`whsec_…`). Shown only in this response: store it now.', examples: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw3Y0Vc3Y1KDs='] });
const CreatedEndpointSchema = Type.Object({ ...endpointProperties, signing_secret: signingSecret }, { examples: [{ ...endpointExample, signing_secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw3Y0Vc3Y1KDs=' }] });
const RotatedEndpointSchema = Type.Object(
  { ...endpointProperties, signing_secret: signingSecret, previous_secret_expires_at: Timestamp },
  { examples: [{ ...endpointExample, signing_secret: 'whsec_pQ2x…', previous_secret_expires_at: '2026-11-23T19:00:00.000Z' }] },
);

const CreateBody = Body(
  {
    endpoint_url: endpointUrl,
    events: Type.Optional(events),
    account_scope: Type.Optional(accountScope),
    account_ids: Type.Optional(accountIds),
    signing_secret: Type.Optional(Type.String({ maxLength: 200, description: 'Bring your own secret: `whsec_` + base64 of 24-64 random bytes. Generated when absent.' })),
    enabled: Type.Optional(Type.Boolean({ description: 'Default true.' })),
    description: Type.Optional(Nullable(description)),
  },
  {
    examples: [
      { endpoint_url: 'https://crm.example.com/hooks/fangate', events: [], description: 'CRM production' },
      { endpoint_url: 'https://crm.example.com/hooks/jane', events: ['accounts.session_expired'], account_scope: 'accounts', account_ids: ['acct_7QmZ2v9LkTfR1xWcB4nH8d'] },
    ],
  },
);
const UpdateBody = Body(
  {
    endpoint_url: Type.Optional(endpointUrl),
    events: Type.Optional(events),
    account_scope: Type.Optional(accountScope),
    account_ids: Type.Optional(accountIds),
    enabled: Type.Optional(Type.Boolean({ description: '`true` enables a disabled endpoint again and clears `disabled_reason`; its pending deliveries resume.' })),
    description: Type.Optional(Nullable(description)),
  },
  { examples: [{ events: ['accounts.connected'] }, { enabled: true }] },
);

const deliveryExample = {
  id: 'whd_9sK2mQ4xLp7rT0vB3nW8yZ',
  event_id: 'evt_5NwQ8rT2kLm0VzXc7HbJ4y',
  event: 'accounts.connected',
  status: 'succeeded',
  attempts: 1,
  last_response_status: 200,
  next_attempt_at: null,
  created_at: '2026-11-22T19:00:00.000Z',
  delivered_at: '2026-11-22T19:00:00.040Z',
};
const deliveryProperties = {
  id: Type.String(),
  event_id: Type.String({ description: 'The event id; also the `webhook-id` header, the same on every try.' }),
  event: Type.String(),
  status: Type.Enum(['pending', 'succeeded', 'failed']),
  attempts: Type.Integer({ description: 'Tries so far.' }),
  last_response_status: Nullable(Type.Integer()),
  next_attempt_at: Nullable(Timestamp),
  created_at: Timestamp,
  delivered_at: Nullable(Timestamp),
};
const DeliverySchema = named('Delivery', Type.Object(deliveryProperties, { description: 'One event sent (or to be sent) to one endpoint.', examples: [deliveryExample] }));
const TrySchema = Type.Object({
  attempted_at: Timestamp,
  response_status: Nullable(Type.Integer({ description: 'null when no answer came (refused address, connection error, timeout).' })),
  duration_ms: Type.Integer(),
  error: Nullable(Type.String()),
  response_body: Nullable(Type.String({ description: 'The first 1 KB of the answer.' })),
});
const DeliveryDetailSchema = Type.Object(
  { ...deliveryProperties, tries: Type.Array(TrySchema, { description: 'Every try, oldest first.' }) },
  { examples: [{ ...deliveryExample, tries: [{ attempted_at: '2026-11-22T19:00:00.010Z', response_status: 200, duration_ms: 30, error: null, response_body: 'ok' }] }] },
);

const BodySchema = named('WebhookEvent', Type.Object(
  {
    id: Type.String(),
    event: Type.String(),
    created_at: Timestamp,
    account_id: Nullable(Type.String()),
    attempt_id: Nullable(Type.String()),
    client_reference_id: Nullable(Type.String()),
    payload: Type.Object({ account: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]), attempt: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]) }),
  },
  { description: 'The JSON body POSTed to endpoints.', examples: [examplePayload('accounts.connected')] },
));
const CatalogSchema = Type.Object(
  { data: Type.Array(Type.Object({ name: Type.String(), description: Type.String(), example: BodySchema })) },
  { examples: [{ data: [{ name: 'accounts.connected', description: 'A new account was connected …', example: examplePayload('accounts.connected') }] }] },
);

export const webhookRoutes: FastifyPluginAsyncTypebox<{ webhooks: WebhookService }> = async (app, { webhooks }) => {
  app.get(
    '/webhooks/events',
    {
      config: read,
      schema: { tags, summary: 'The event catalog', description: 'Every event FanGate sends, with what it means and an example body.', response: { 200: CatalogSchema, ...problemResponses(401, 403, 429) } },
    },
    async () => ({ data: webhooks.catalog() }),
  );

  app.get(
    '/webhooks/:event/example-payload',
    {
      config: read,
      schema: {
        tags,
        summary: 'An example body of one event',
        params: Type.Object({ event: Type.String({ maxLength: 100, description: 'An event name, e.g. `accounts.connected`.' }) }),
        response: { 200: BodySchema, ...problemResponses(401, 403, 404, 429) },
      },
    },
    async (request) => {
      const { event } = request.params;
      if (!isEventName(event)) throw notFound(`Event "${event}"`);
      return examplePayload(event);
    },
  );

  app.post(
    '/webhooks',
    {
      config: { ...write, idempotent: true },
      schema: {
        tags,
        summary: 'Create a webhook endpoint',
        description:
          'Answers the endpoint with its `signing_secret`, shown only here (and on rotate-secret). Deliveries are signed per Standard Webhooks. ' +
          '422 `validation_failed` naming `endpoint_url` when the URL is not http(s) or its host resolves to a private, loopback, link-local, CGNAT or metadata address.',
        headers: IdempotencyHeaders,
        body: CreateBody,
        response: { 201: CreatedEndpointSchema, ...problemResponses(401, 403, 422, 429) },
      },
    },
    async (request, reply) => reply.code(201).send(await webhooks.create(request.principal.organization.id, request.body as never, actorOf(request))),
  );

  app.get(
    '/webhooks',
    {
      config: read,
      schema: { tags, summary: 'List webhook endpoints', description: 'Newest first, cursor-paginated.', querystring: PageQuery, response: { 200: PageOf(EndpointSchema), ...problemResponses(401, 403, 422, 429) } },
    },
    async (request) => webhooks.list(request.principal.organization.id, request.query),
  );

  app.get(
    '/webhooks/:id',
    { config: read, schema: { tags, summary: 'Get a webhook endpoint', params: EndpointParams, response: { 200: EndpointSchema, ...problemResponses(401, 403, 404, 429) } } },
    async (request) => webhooks.get(request.principal.organization.id, request.params.id),
  );

  app.put(
    '/webhooks/:id',
    {
      config: write,
      schema: {
        tags,
        summary: 'Change a webhook endpoint',
        description: 'Send only what changes. The secret changes only through rotate-secret.',
        params: EndpointParams,
        body: UpdateBody,
        response: { 200: EndpointSchema, ...problemResponses(401, 403, 404, 422, 429) },
      },
    },
    async (request) => webhooks.update(request.principal.organization.id, request.params.id, request.body as never, actorOf(request)),
  );

  app.delete(
    '/webhooks/:id',
    {
      config: write,
      schema: { tags, summary: 'Delete a webhook endpoint', description: 'With its deliveries; pending ones are not sent.', params: EndpointParams, response: { 204: Type.Null({ description: 'Deleted.' }), ...problemResponses(401, 403, 404, 429) } },
    },
    async (request, reply) => {
      await webhooks.remove(request.principal.organization.id, request.params.id, actorOf(request));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/webhooks/:id/test',
    {
      config: write,
      schema: {
        tags,
        summary: 'Send a test event now',
        description: 'Sends a `webhooks.test` event to this endpoint only, waits for the first try (at most the 15 s timeout) and answers the delivery; a failed try is retried on the usual schedule.',
        params: EndpointParams,
        response: { 200: DeliverySchema, ...problemResponses(401, 403, 404, 429) },
      },
    },
    async (request) => webhooks.test(request.principal.organization.id, request.params.id),
  );

  app.post(
    '/webhooks/:id/rotate-secret',
    {
      config: write,
      schema: {
        tags,
        summary: 'Rotate the signing secret',
        description: 'Answers the new secret (shown only here). For 24 h the old secret keeps signing beside it: `webhook-signature` carries both signatures, so receivers can switch without losing a message.',
        params: EndpointParams,
        response: { 200: RotatedEndpointSchema, ...problemResponses(401, 403, 404, 429) },
      },
    },
    async (request) => webhooks.rotateSecret(request.principal.organization.id, request.params.id, actorOf(request)),
  );

  app.get(
    '/webhooks/:id/deliveries',
    {
      config: read,
      schema: {
        tags,
        summary: 'List deliveries of an endpoint',
        description: 'Newest first, cursor-paginated; filter by `status` and `event`.',
        params: EndpointParams,
        querystring: Type.Object({
          ...PageQuery.properties,
          status: Type.Optional(Type.Enum(['pending', 'succeeded', 'failed'])),
          event: Type.Optional(EventNameSchema),
        }),
        response: { 200: PageOf(DeliverySchema), ...problemResponses(401, 403, 404, 422, 429) },
      },
    },
    async (request) => webhooks.listDeliveries(request.principal.organization.id, request.params.id, request.query as never),
  );

  app.get(
    '/webhooks/:id/deliveries/:delivery_id',
    {
      config: read,
      schema: { tags, summary: 'Get a delivery with every try', params: DeliveryParams, response: { 200: DeliveryDetailSchema, ...problemResponses(401, 403, 404, 429) } },
    },
    async (request) => webhooks.getDelivery(request.principal.organization.id, request.params.id, request.params.delivery_id),
  );

  app.post(
    '/webhooks/:id/deliveries/:delivery_id/retry',
    {
      config: write,
      schema: {
        tags,
        summary: 'Send a delivery again',
        description: 'Queues one more try of a succeeded or failed delivery now (same `webhook-id`); 409 `delivery_pending` while it is still pending.',
        params: DeliveryParams,
        response: { 202: DeliverySchema, ...problemResponses(401, 403, 404, 409, 429) },
      },
    },
    async (request, reply) => reply.code(202).send(await webhooks.retryDelivery(request.principal.organization.id, request.params.id, request.params.delivery_id)),
  );

  app.post(
    '/webhooks/:id/recover',
    {
      config: write,
      schema: {
        tags,
        summary: 'Send failed deliveries again',
        description: 'Queues one more try of every failed delivery of this endpoint created at or after `since`.',
        params: EndpointParams,
        body: Body({ since: Type.String({ format: 'date-time', description: 'ISO 8601 time.', examples: ['2026-11-22T00:00:00.000Z'] }) }, { examples: [{ since: '2026-11-22T00:00:00.000Z' }] }),
        response: { 202: Type.Object({ recovered: Type.Integer({ description: 'Deliveries queued again.' }) }, { examples: [{ recovered: 12 }] }), ...problemResponses(401, 403, 404, 422, 429) },
      },
    },
    async (request, reply) => reply.code(202).send(await webhooks.recover(request.principal.organization.id, request.params.id, new Date(request.body.since))),
  );
};
