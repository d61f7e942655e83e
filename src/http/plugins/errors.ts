import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { toProblem } from '../problem.js';
import { ApiError, validationError } from '../../lib/errors.js';

interface AjvIssue {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** `/customProxy/port` → `customProxy.port`; required/unknown members name the member itself. */
function fieldOf(issue: AjvIssue): string {
  const path = issue.instancePath.split('/').filter(Boolean).join('.');
  const member = (issue.params.missingProperty ?? issue.params.additionalProperty) as string | undefined;
  return member ? (path ? `${path}.${member}` : member) : path || '(body)';
}

function messageOf(issue: AjvIssue): string {
  if (issue.keyword === 'required') return 'is required';
  if (issue.keyword === 'additionalProperties') return 'is not a known field';
  if (issue.keyword === 'enum') return `must be one of: ${(issue.params.allowedValues as unknown[]).join(', ')}`;
  return issue.message ?? 'is invalid';
}

/** Fastify's own errors (parsing, limits, validation) become the contract's problem codes. */
function fromFastifyError(error: FastifyError): ApiError {
  if (error.validation) {
    const seen = new Set<string>();
    const errors = (error.validation as unknown as AjvIssue[])
      .map((issue) => ({ field: fieldOf(issue), message: messageOf(issue) }))
      .filter((e) => !seen.has(e.field) && seen.add(e.field));
    return validationError(errors);
  }
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, 'unsupported_media_type', 'Send the body as application/json.');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(413, 'payload_too_large', 'The request body is too large.');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError(400, 'malformed_json', 'The body is empty but Content-Type says JSON.');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ApiError(400, 'malformed_json', 'The body is not valid JSON.');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError(400, 'bad_request', 'Content-Length does not match the body.');
  }
  if (error instanceof SyntaxError) return new ApiError(400, 'malformed_json', 'The body is not valid JSON.');
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) return new ApiError(status, 'bad_request', error.message);
  return new ApiError(500, 'internal_error', 'Something went wrong on our side. The request id helps us find it.', { retryable: true });
}

export function sendProblem(reply: FastifyReply, request: FastifyRequest, error: ApiError): FastifyReply {
  if (error.retryAfterSec !== undefined) reply.header('retry-after', String(error.retryAfterSec));
  return reply
    .code(error.status)
    .type('application/problem+json; charset=utf-8')
    .serializer(JSON.stringify)
    .send(toProblem(error, request.id));
}

async function errorsPlugin(app: FastifyInstance) {
  app.setErrorHandler((raw: FastifyError, request, reply) => {
    const error = raw instanceof ApiError ? raw : fromFastifyError(raw);
    if (error.status >= 500) request.log.error({ err: raw }, 'request failed');
    return sendProblem(reply, request, error);
  });

  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, request, new ApiError(404, 'not_found', `No route ${request.method} ${request.url.split('?')[0]}.`)),
  );
}

export default fp(errorsPlugin, { name: 'fangate-errors' });
