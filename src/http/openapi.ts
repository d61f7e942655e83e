import { statusTitle } from './problem.js';

/**
 * The OpenAPI document's finishing (DESIGN 12), applied to what @fastify/swagger builds from the
 * route schemas: stable camelCase operationIds, defined tags, errors as `application/problem+json`
 * with one honest example per status, Server-Sent Events as `text/event-stream`, the response
 * headers every answer carries, and no trailing-slash paths. Routes added later get all of it too
 * (an operationId derived from method and path, a tag defined from its name).
 */

type Json = Record<string, any>;

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

/** Tags in the order the reference shows them. */
const TAGS: Record<string, string> = {
  'Connect (OnlyFans)': 'Connect an OnlyFans-style account (email + password, copied cookies or the phone hand-off) and follow the attempt through every checkpoint.',
  'Connect (Fansly)': 'Connect a Fansly-style account by email or username + password; same attempt model as OnlyFans.',
  Accounts: 'Connected accounts: list, change, import a browser session, check the session now, disconnect.',
  'Access API': "Call the platform's API with an account's stored session, user agent and proxy.",
  Link: 'The hosted connect page for creators (and its embeddable script `link.js`).',
  Webhooks: 'Signed (Standard Webhooks) notifications of account and link changes, with delivery history and retries.',
  'API keys': "The organisation's API keys.",
  Admin: 'Operator endpoints, authorised by FANGATE_ADMIN_TOKEN.',
  Operations: 'Liveness and readiness probes.',
};

/** operationIds pinned by DESIGN 12 and the SDK; other operations get one derived from method and path. */
const OPERATION_IDS: Record<string, string> = {
  'post /api/authenticate': 'startAuthentication',
  'get /api/authenticate': 'listAttempts',
  'get /api/authenticate/{attempt_id}': 'getAttempt',
  'put /api/authenticate/{attempt_id}': 'submitAttemptCode',
  'delete /api/authenticate/{attempt_id}': 'cancelAttempt',
  'get /api/authenticate/{attempt_id}/events': 'streamAttemptEvents',
  'post /api/authenticate/{attempt_id}/send-email-to-creator': 'sendEmailToCreator',
  'put /api/authenticate/{account_id}/credentials': 'updateCredentials',
  'post /api/authenticate/{account_id}/reauthenticate': 'reauthenticateAccount',
  'post /api/fansly/authenticate': 'startFanslyAuthentication',
  'get /api/fansly/authenticate': 'listFanslyAttempts',
  'get /api/fansly/authenticate/{attempt_id}': 'getFanslyAttempt',
  'put /api/fansly/authenticate/{attempt_id}': 'submitFanslyAttemptCode',
  'delete /api/fansly/authenticate/{attempt_id}': 'cancelFanslyAttempt',
  'get /api/fansly/authenticate/{attempt_id}/events': 'streamFanslyAttemptEvents',
  'put /api/fansly/authenticate/{account_id}/credentials': 'updateFanslyCredentials',
  'post /api/fansly/authenticate/{account_id}/reauthenticate': 'reauthenticateFanslyAccount',
  'post /api/mobile-auth/{code}': 'completeMobileAuthentication',
  'get /api/accounts': 'listAccounts',
  'get /api/accounts/{id}': 'getAccount',
  'patch /api/accounts/{id}': 'updateAccount',
  'delete /api/accounts/{id}': 'deleteAccount',
  'post /api/accounts/{id}/invalidate': 'invalidateAccount',
  'post /api/accounts/{id}/check': 'checkAccount',
  'post /api/accounts/import': 'importAccount',
  'patch /api/accounts/import/{id}': 'rotateImportedSession',
  'get /api/{account_id}/me': 'getPlatformUser',
  'get /api/{account_id}/proxy/{path}': 'proxyGet',
  'post /api/{account_id}/proxy/{path}': 'proxyPost',
  'put /api/{account_id}/proxy/{path}': 'proxyPut',
  'patch /api/{account_id}/proxy/{path}': 'proxyPatch',
  'delete /api/{account_id}/proxy/{path}': 'proxyDelete',
  'post /api/link/init': 'createLink',
  'get /api/link/{id}': 'getLink',
  'delete /api/link/{id}': 'cancelLink',
  'get /api/webhooks': 'listWebhookEndpoints',
  'post /api/webhooks': 'createWebhookEndpoint',
  'get /api/webhooks/events': 'listWebhookEventTypes',
  'get /api/webhooks/{event}/example-payload': 'getWebhookExamplePayload',
  'get /api/webhooks/{id}': 'getWebhookEndpoint',
  'put /api/webhooks/{id}': 'updateWebhookEndpoint',
  'delete /api/webhooks/{id}': 'deleteWebhookEndpoint',
  'post /api/webhooks/{id}/test': 'testWebhookEndpoint',
  'post /api/webhooks/{id}/rotate-secret': 'rotateWebhookSecret',
  'post /api/webhooks/{id}/recover': 'recoverWebhookDeliveries',
  'get /api/webhooks/{id}/deliveries': 'listWebhookDeliveries',
  'get /api/webhooks/{id}/deliveries/{delivery_id}': 'getWebhookDelivery',
  'post /api/webhooks/{id}/deliveries/{delivery_id}/retry': 'retryWebhookDelivery',
  'get /api/whoami': 'whoAmI',
  'get /api/api-keys': 'listApiKeys',
  'post /api/api-keys': 'createApiKey',
  'delete /api/api-keys/{id}': 'revokeApiKey',
  'post /admin/orgs': 'adminCreateOrganization',
  'get /admin/orgs': 'adminFindOrganization',
  'post /admin/orgs/{id}/api-keys': 'adminCreateApiKey',
  'post /admin/vault/rotate': 'adminRotateVault',
  'get /healthz': 'getLiveness',
  'get /readyz': 'getReadiness',
};

const VERBS: Record<string, string> = { get: 'get', put: 'replace', post: 'create', delete: 'delete', patch: 'update' };
const pascal = (word: string) => word.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : '')).replace(/^./, (c) => c.toUpperCase());

/** `get /api/audit-events/{id}` → `getAuditEventsById`: stable, camelCase, unique within the document. */
function derivedOperationId(method: string, path: string): string {
  const words = path
    .split('/')
    .filter((s) => s && s !== 'api')
    .map((s) => (s.startsWith('{') ? `By${pascal(s.slice(1, -1))}` : pascal(s)));
  return `${VERBS[method] ?? method}${words.join('')}`;
}

/** One example per status, the problem a client most likely meets there; operations override below. */
const PROBLEMS: Record<number, { code: string; detail: string; extra?: Json }> = {
  400: { code: 'bad_request', detail: 'The request is not valid HTTP (for example a header holds a forbidden character).' },
  401: { code: 'unauthorized', detail: 'Send a valid API key as `Authorization: Bearer fg_…`.' },
  403: { code: 'forbidden', detail: 'This API key lacks the scope accounts:write.' },
  404: { code: 'not_found', detail: 'Attempt auth_3Hn8QzL1vR6kW2pY9cT5mB was not found.' },
  409: { code: 'conflict', detail: 'The request conflicts with the current state of the resource.' },
  410: { code: 'account_expired', detail: 'The session of this account expired: reconnect it (PUT /api/authenticate/{account_id}/credentials).' },
  412: { code: 'no_stored_credentials', detail: 'No credentials are stored for this account: send new ones with PUT /api/authenticate/{account_id}/credentials.' },
  422: {
    code: 'validation_failed',
    detail: 'The request has 2 invalid fields: password must be a string; email must be an email address.',
    extra: {
      errors: [
        { field: 'password', message: 'password must be a string' },
        { field: 'email', message: 'email must be an email address' },
      ],
    },
  },
  429: { code: 'rate_limited', detail: 'Rate limit of 1000 requests per minute per API key reached; try again in 12 s.', extra: { retryAfterSec: 12 } },
  502: { code: 'upstream_error', detail: 'The platform could not be reached (connection refused).', extra: { upstreamStatus: null } },
  503: { code: 'account_reauthenticating', detail: 'The account is re-authenticating; try again shortly.', extra: { retryAfterSec: 5 } },
  504: { code: 'upstream_timeout', detail: 'The platform did not answer within 30 s.' },
};

const ATTEMPT_CONFLICT = { code: 'attempt_not_awaiting_input', detail: 'The attempt (state pending) is not waiting for this input; check its state and next_actions.', extra: { state: 'pending' } };
const PROBLEM_OVERRIDES: Record<string, Record<number, { code: string; detail: string; extra?: Json }>> = {
  startAuthentication: { 409: { code: 'account_already_connected', detail: 'This platform user is already connected as acct_7QmV2c9XkT4rB1nH8sL3dW.', extra: { existing_account_id: 'acct_7QmV2c9XkT4rB1nH8sL3dW' } } },
  startFanslyAuthentication: { 409: { code: 'account_already_connected', detail: 'This platform user is already connected as acct_7QmV2c9XkT4rB1nH8sL3dW.', extra: { existing_account_id: 'acct_7QmV2c9XkT4rB1nH8sL3dW' } } },
  submitAttemptCode: { 409: ATTEMPT_CONFLICT },
  submitFanslyAttemptCode: { 409: ATTEMPT_CONFLICT },
  cancelAttempt: { 409: { code: 'attempt_already_completed', detail: 'The attempt has already completed (state completed_success).', extra: { state: 'completed_success' } } },
  cancelFanslyAttempt: { 409: { code: 'attempt_already_completed', detail: 'The attempt has already completed (state completed_success).', extra: { state: 'completed_success' } } },
  sendEmailToCreator: {
    409: { code: 'attempt_not_awaiting_email', detail: 'The attempt (state needs_otp) is not waiting for the email device check: only an attempt in needs_email sends the email.', extra: { state: 'needs_otp' } },
    429: { code: 'email_recently_sent', detail: 'The email was sent less than 60 s ago; ask again after the cool-down.', extra: { retryAfterSec: 42 } },
  },
  reauthenticateAccount: { 400: { code: 'already_authenticated', detail: "Can't re-authenticate account at this time.", extra: { reason: 'Account is already successfully authenticated' } } },
  reauthenticateFanslyAccount: { 400: { code: 'already_authenticated', detail: "Can't re-authenticate account at this time.", extra: { reason: 'Account is already successfully authenticated' } } },
  importAccount: {
    400: { code: 'session_invalid', detail: 'The platform rejected this session.' },
    409: { code: 'account_already_connected', detail: 'This platform user is already connected as acct_7QmV2c9XkT4rB1nH8sL3dW.', extra: { existing_account_id: 'acct_7QmV2c9XkT4rB1nH8sL3dW' } },
  },
  rotateImportedSession: {
    400: { code: 'not_imported', detail: 'This account was connected by login, not imported: update its credentials instead.' },
    409: { code: 'wrong_user', detail: 'The cookie belongs to another platform user than this account.' },
  },
  completeMobileAuthentication: { 400: { code: 'session_invalid', detail: 'The platform rejected this session.' } },
  retryWebhookDelivery: { 409: { code: 'delivery_pending', detail: 'The delivery is still pending: it is sent on its own.' } },
  adminCreateOrganization: { 409: { code: 'organization_exists', detail: 'An organisation named acme exists.' } },
};

function problemExample(status: number, operationId: string): Json {
  const chosen = PROBLEM_OVERRIDES[operationId]?.[status] ?? PROBLEMS[status] ?? { code: 'error', detail: statusTitle(status) };
  const extra = chosen.extra ?? {};
  return {
    type: `urn:fangate:problem:${chosen.code}`,
    title: statusTitle(status),
    status,
    detail: chosen.detail,
    code: chosen.code,
    retryable: status === 429 || status === 503 || status === 502 || status === 504,
    ...extra,
    message: chosen.detail,
    request_id: 'req_4mB0c8yVhG1k2Qw9sT3xZp',
  };
}

const HEADERS: Json = {
  RequestId: { description: 'The request id (also `request_id` in problem documents); a sane incoming `x-request-id` is kept.', schema: { type: 'string', examples: ['req_4mB0c8yVhG1k2Qw9sT3xZp'] } },
  RateLimitLimit: { description: 'Requests allowed in the current window.', schema: { type: 'integer', examples: [1000] } },
  RateLimitRemaining: { description: 'Requests left in the current window.', schema: { type: 'integer', examples: [998] } },
  RateLimitReset: { description: 'Seconds until the window resets.', schema: { type: 'integer', examples: [42] } },
  RetryAfter: { description: 'Seconds to wait before trying again.', schema: { type: 'integer', examples: [12] } },
};
const header = (name: string) => ({ $ref: `#/components/headers/${name}` });

function responseHeaders(status: number, limited: boolean): Json {
  const headers: Json = { 'x-request-id': header('RequestId') };
  if (limited && status !== 401) {
    headers['RateLimit-Limit'] = header('RateLimitLimit');
    headers['RateLimit-Remaining'] = header('RateLimitRemaining');
    headers['RateLimit-Reset'] = header('RateLimitReset');
  }
  if (status === 429 || status === 503) headers['Retry-After'] = header('RetryAfter');
  return headers;
}

/** Paths of Server-Sent Events routes (seen by `transformRoute`, declared `text/event-stream` by `transformDocument`). */
const ssePaths = new Set<string>();

/**
 * Per-route part (the `transform` option of @fastify/swagger): paths without a trailing slash (a
 * seed alias `/api/authenticate/` still answers, but the document names `/api/authenticate`), and the
 * Access API's wildcard as a named path parameter `{path}`.
 */
export function transformRoute({ schema, url, route }: { schema: Json; url: string; route: Json }): { schema: Json; url: string } {
  let path = url.length > 1 ? url.replace(/\/+$/, '') : url;
  let out = schema;
  if (path.endsWith('/*')) {
    path = `${path.slice(0, -1)}:path`;
    const params = (schema?.params ?? {}) as Json;
    const { '*': wildcard, ...properties } = (params.properties ?? {}) as Json;
    out = {
      ...schema,
      params: {
        ...params,
        properties: { ...properties, path: { ...wildcard, description: "The platform API path, relative to its API root, e.g. `users/me`." } },
        required: [...((params.required as string[] | undefined) ?? []).filter((r) => r !== '*'), 'path'],
      },
    };
  }
  if (route.sse) ssePaths.add(path.replace(/:([A-Za-z0-9_]+)/g, '{$1}'));
  return { schema: out, url: path };
}

/** Whole-document part (the `transformObject` option). */
export function transformDocument(document: Json, successText: Record<string, string>): Json {
  const doc = document as Json;
  const components = (doc.components ??= {});
  components.headers = { ...HEADERS, ...(components.headers ?? {}) };
  const usedTags = new Set<string>();
  const usedIds = new Set<string>();
  for (const [path, item] of Object.entries<Json>(doc.paths ?? {})) {
    for (const method of METHODS) {
      if (!item[method]) continue;
      // One route serving several methods shares one operation object: each method gets its own.
      const operation = (item[method] = structuredClone(item[method])) as Json;
      for (const tag of operation.tags ?? []) usedTags.add(tag);
      let id = operation.operationId ?? OPERATION_IDS[`${method} ${path}`] ?? derivedOperationId(method, path);
      while (usedIds.has(id)) id = `${id}Again`;
      usedIds.add(id);
      operation.operationId = id;
      operation.description ??= `${operation.summary}.`;
      const limited = path.startsWith('/api/') && !(Array.isArray(operation.security) && operation.security.length === 0);
      const sse = method === 'get' && ssePaths.has(path);
      for (const [code, response] of Object.entries<Json>(operation.responses ?? {})) {
        const status = Number(code);
        if (response.description === 'Default Response') response.description = successText[code] ?? statusTitle(status);
        response.headers = { ...responseHeaders(status, limited), ...(response.headers ?? {}) };
        if (status >= 400) {
          const example = problemExample(status, id);
          response.description = `${statusTitle(status)}: \`${example.code}\`${response.description && response.description !== statusTitle(status) ? ` — ${response.description}` : ''}`;
          response.content = {
            'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' }, examples: { [example.code]: { summary: example.detail, value: example } } },
          };
        } else if (sse && status === 200) {
          const json = response.content?.['application/json'] as Json | undefined;
          const example = json?.schema?.examples?.[0] ?? json?.example ?? 'event: attempt\ndata: {…}\n\n';
          response.content = { 'text/event-stream': { schema: { type: 'string', description: json?.schema?.description }, example } };
        }
      }
    }
  }
  // A body or answer that is a named schema shows that schema's example where it is used.
  const exampleOf = (media: Json | undefined) => {
    const ref = media?.schema?.$ref as string | undefined;
    const target = ref?.startsWith('#/components/schemas/') ? components.schemas?.[ref.slice('#/components/schemas/'.length)] : undefined;
    if (media && target?.examples?.length && media.example === undefined && media.examples === undefined) {
      if (target.examples.length === 1) media.example = target.examples[0];
      else media.examples = Object.fromEntries(target.examples.map((value: unknown, i: number) => [`example${i + 1}`, { value }]));
    }
  };
  for (const item of Object.values<Json>(doc.paths ?? {})) {
    for (const method of METHODS) {
      exampleOf(item[method]?.requestBody?.content?.['application/json']);
      for (const response of Object.values<Json>(item[method]?.responses ?? {})) exampleOf(response.content?.['application/json']);
    }
  }
  const defined = new Set<string>((doc.tags ?? []).map((t: Json) => t.name));
  doc.tags = [
    ...(doc.tags ?? []),
    ...Object.entries(TAGS)
      .filter(([name]) => usedTags.has(name) && !defined.has(name))
      .map(([name, description]) => ({ name, description })),
    ...[...usedTags].filter((name) => !defined.has(name) && !(name in TAGS)).map((name) => ({ name, description: `${name} endpoints.` })),
  ];
  return doc;
}
