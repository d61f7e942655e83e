import { Type, type Static } from 'typebox';
import type { ApiError } from '../lib/errors.js';
import { named } from './components.js';

/** RFC 9457 problem document, as every FanGate error is answered. */
const ProblemObject = Type.Object(
  {
    type: Type.String({ description: 'URI naming the problem type: `urn:fangate:problem:<code>`.' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ description: 'Stable machine-readable error code.' }),
    retryable: Type.Boolean({ description: 'Whether the same request may succeed later unchanged.' }),
    retryAfterSec: Type.Optional(Type.Integer()),
    errors: Type.Optional(
      Type.Array(Type.Object({ field: Type.String(), message: Type.String() }), {
        description: 'One entry per invalid field (validation errors).',
      }),
    ),
    message: Type.String({ description: 'The same text as `detail`, for clients written against the seed services.' }),
    reason: Type.Optional(Type.String({ description: 'Why, where the seed services define one (e.g. `already_authenticated`).' })),
    request_id: Type.String(),
  },
  {
    additionalProperties: true,
    description: 'RFC 9457 problem details. Some errors carry extra fields, e.g. `existing_account_id`.',
    examples: [
      {
        type: 'urn:fangate:problem:validation_failed',
        title: 'Unprocessable Content',
        status: 422,
        detail: 'name must be at most 100 characters long.',
        code: 'validation_failed',
        retryable: false,
        errors: [{ field: 'name', message: 'name must be at most 100 characters long' }],
        message: 'name must be at most 100 characters long.',
        request_id: 'req_4mB0c8yVhG1k2Qw9sT3xZp',
      },
    ],
  },
);
export type Problem = Static<typeof ProblemObject>;
export const ProblemSchema = named('Problem', ProblemObject);

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  410: 'Gone',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  499: 'Client Closed Request',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

export const statusTitle = (status: number): string => TITLES[status] ?? 'Error';

/** Codes whose wording the seed services pin: their clients compare `message` and read `reason`. */
const SEED_WORDING: Record<string, { message: string; reason?: string }> = {
  already_authenticated: { message: "Can't re-authenticate account at this time.", reason: 'Account is already successfully authenticated' },
};

export function toProblem(error: ApiError, requestId: string): Problem & Record<string, unknown> {
  const seed = SEED_WORDING[error.code];
  const detail = seed?.message ?? error.message;
  return {
    ...error.extra,
    type: `urn:fangate:problem:${error.code}`,
    title: statusTitle(error.status),
    status: error.status,
    detail,
    message: detail,
    ...(seed?.reason ? { reason: seed.reason } : {}),
    code: error.code,
    retryable: error.retryable,
    ...(error.retryAfterSec === undefined ? {} : { retryAfterSec: error.retryAfterSec }),
    ...(error.errors ? { errors: error.errors } : {}),
    request_id: requestId,
  };
}

/** Response schemas for the given error statuses, for route definitions and the OpenAPI document. */
export function problemResponses(...statuses: number[]): Record<number, typeof ProblemSchema> {
  return Object.fromEntries(statuses.map((s) => [s, { ...ProblemSchema, description: statusTitle(s) }]));
}
