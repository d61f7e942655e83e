import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { randomBase62 } from '../../lib/ids.js';
import { statusTitle, toProblem } from '../problem.js';
import { HEADER_VALUE_PATTERN } from '../schemas.js';
import { ApiError, type FieldError, validationError } from '../../lib/errors.js';
import type { ValidationIssue } from '../validation.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The route's own field checks (combinations, domain rules) beyond its schema. When the schema
     * fails, they run on the body's members that passed it, so one 422 names every bad field.
     */
    fieldCheck?: (body: Record<string, unknown>) => Promise<FieldError[]>;
  }
}

/** `/customProxy/port` → `customProxy.port`; required/unknown members name the member itself. */
function fieldOf(issue: ValidationIssue, part: string | undefined): string {
  const path = issue.instancePath
    .split('/')
    .filter(Boolean)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .join('.');
  const member = (issue.params.missingProperty ?? issue.params.additionalProperty) as string | undefined;
  if (member) return path ? `${path}.${member}` : member;
  return path || (part === 'querystring' ? 'query' : (part ?? 'body'));
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  object: 'an object',
  array: 'an array',
  null: 'null',
};

/** Patterns the schemas use, said for people. */
const PATTERN_RULES: Record<string, string> = {
  '^[A-Za-z]{2}$': 'must be a two-letter country code such as us',
  '^[A-Za-z0-9_-]+$': 'may hold only letters, digits, _ and -',
  '^[^\\s/@]+$': 'must be a host name or IP address (no spaces, / or @)',
  '^[A-Za-z2-7 =-]+$': 'must be a base32 secret (letters A-Z and digits 2-7)',
  [HEADER_VALUE_PATTERN]: 'must be a valid HTTP header value: printable ASCII or Latin-1 characters, no line breaks, control characters or emoji',
};

const FORMAT_RULES: Record<string, string> = {
  email: 'must be an email address',
  'date-time': 'must be an ISO 8601 date-time',
  uri: 'must be an absolute URL',
  url: 'must be an absolute URL',
};

const chars = (n: number) => `${n} character${n === 1 ? '' : 's'}`;

/** An AJV issue as a sentence (without the field name, which validationError puts in front). */
function ruleOf(issue: ValidationIssue): string {
  const p = issue.params;
  switch (issue.keyword) {
    case 'required':
      return 'is required';
    case 'additionalProperties':
      return 'is not a known field';
    case 'type': {
      const types = String(p.type).split(',');
      return `must be ${types.map((t) => TYPE_NAMES[t] ?? t).join(' or ')}`;
    }
    case 'enum':
      return `must be one of: ${(p.allowedValues as unknown[]).map((v) => String(v)).join(', ')}`;
    case 'const':
      return `must be ${JSON.stringify(p.allowedValue)}`;
    case 'minLength':
      return p.limit === 1 ? 'must not be empty' : `must be at least ${chars(Number(p.limit))} long`;
    case 'maxLength':
      return `must be at most ${chars(Number(p.limit))} long`;
    case 'minimum':
      return `must be at least ${p.limit}`;
    case 'maximum':
      return `must be at most ${p.limit}`;
    case 'exclusiveMinimum':
      return `must be more than ${p.limit}`;
    case 'exclusiveMaximum':
      return `must be less than ${p.limit}`;
    case 'multipleOf':
      return `must be a multiple of ${p.multipleOf}`;
    case 'minItems':
      return `must hold at least ${p.limit} item${p.limit === 1 ? '' : 's'}`;
    case 'maxItems':
      return `must hold at most ${p.limit} item${p.limit === 1 ? '' : 's'}`;
    case 'uniqueItems':
      return 'must not hold the same item twice';
    case 'minProperties':
      return `must hold at least ${p.limit} field${p.limit === 1 ? '' : 's'}`;
    case 'maxProperties':
      return `must hold at most ${p.limit} field${p.limit === 1 ? '' : 's'}`;
    case 'format':
      return FORMAT_RULES[String(p.format)] ?? `must be a valid ${p.format}`;
    case 'pattern':
      return PATTERN_RULES[String(p.pattern)] ?? 'has an invalid format';
    case 'noNul':
    case 'wellFormed':
    case 'finite':
      return issue.message ?? 'is invalid';
    default:
      return 'is invalid';
  }
}

/**
 * One entry per field. A union (`anyOf`) fails with one issue per branch: those that only say
 * "wrong type" become a single "must be an object or null"; a branch of the right type that
 * failed deeper speaks for itself.
 */
function fieldErrors(issues: { issue: ValidationIssue; part: string | undefined }[]): FieldError[] {
  const byField = new Map<string, { keyword: string; rule: string }[]>();
  for (const { issue, part } of issues) {
    const field = fieldOf(issue, part);
    if (issue.keyword === 'anyOf' || issue.keyword === 'oneOf' || issue.keyword === 'if') continue;
    const list = byField.get(field) ?? [];
    list.push({ keyword: issue.keyword, rule: ruleOf(issue) });
    byField.set(field, list);
  }
  const errors: FieldError[] = [];
  for (const [field, list] of byField) {
    const types = list.filter((e) => e.keyword === 'type');
    const other = list.find((e) => e.keyword !== 'type' && e.keyword !== 'const');
    if (other) errors.push({ field, message: other.rule });
    else if (types.length > 1 || list.some((e) => e.keyword === 'const')) {
      const wanted = list.map((e) => e.rule.replace(/^must be /, ''));
      errors.push({ field, message: `must be ${[...new Set(wanted)].join(' or ')}` });
    } else errors.push({ field, message: list[0]!.rule });
  }
  return errors;
}

const PARTS = ['params', 'body', 'querystring', 'headers'] as const;

/**
 * Fastify stops at the first part (params, body, query, headers) that fails; the others are
 * checked here too, so that one answer names every bad field.
 */
function allIssues(error: FastifyError & { validationContext?: string }, request: FastifyRequest) {
  const issues = (error.validation as unknown as ValidationIssue[]).map((issue) => ({ issue, part: error.validationContext }));
  const failed = PARTS.indexOf(error.validationContext as (typeof PARTS)[number]);
  if (failed < 0) return issues;
  for (const part of PARTS.slice(failed + 1)) {
    try {
      const validate = request.getValidationFunction(part) as ((data: unknown) => boolean) & { errors?: ValidationIssue[] | null };
      if (!validate) continue;
      const data = part === 'querystring' ? request.query : part === 'body' ? request.body : part === 'headers' ? request.headers : request.params;
      if (!validate(part === 'body' && data === undefined ? null : data)) issues.push(...(validate.errors ?? []).map((issue) => ({ issue, part })));
    } catch {
      /* a part that cannot be checked here is checked on the next request */
    }
  }
  return issues;
}

/** Fastify's own errors (parsing, limits, validation) become the contract's problem codes. */
export function fromFastifyError(error: FastifyError, request: FastifyRequest): ApiError {
  if (error.validation) {
    const issues = allIssues(error, request);
    if (issues.length === 1 && issues[0]!.part === 'body' && issues[0]!.issue.instancePath === '' && issues[0]!.issue.keyword === 'type') {
      return validationError([{ field: 'body', message: 'must be a JSON object' }]);
    }
    return validationError(fieldErrors(issues));
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
    case 'FST_ERR_CTP_INVALID_CONTENT_TYPE':
    case 'FST_ERR_CTP_INVALID_TYPE':
      return new ApiError(415, 'unsupported_media_type', 'Send the body as application/json.');
    case 'FST_ERR_BAD_URL':
      return new ApiError(400, 'bad_url', 'The URL is not valid: a percent-escape does not decode to UTF-8 text.');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new ApiError(414, 'uri_too_long', 'A path segment of the URL is too long to be an id.');
    case 'FST_ERR_ASYNC_CONSTRAINT':
      return new ApiError(400, 'bad_request', 'The request does not match any route constraint.');
  }
  if (error instanceof SyntaxError) return new ApiError(400, 'malformed_json', 'The body is not valid JSON.');
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) return new ApiError(status, 'bad_request', error.message);
  return new ApiError(500, 'internal_error', 'Something went wrong on our side. The request id helps us find it.', { retryable: true });
}

export function sendProblem(reply: FastifyReply, request: FastifyRequest, error: ApiError): FastifyReply {
  // For the request log line: which problem was answered.
  (reply as FastifyReply & { problemCode?: string }).problemCode = error.code;
  if (error.retryAfterSec !== undefined) reply.header('retry-after', String(error.retryAfterSec));
  reply.header('x-request-id', request.id);
  return reply
    .code(error.status)
    .type('application/problem+json; charset=utf-8')
    .serializer(JSON.stringify)
    .send(toProblem(error, request.id));
}

/** Fastify's hook for errors found before routing (bad percent-escapes, over-long ids). */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  void sendProblem(reply, request, fromFastifyError(error, request));
}

const CLIENT_ERRORS: Record<string, ApiError> = {
  HPE_HEADER_OVERFLOW: new ApiError(431, 'headers_too_large', 'The request headers are too large.'),
  ERR_HTTP_REQUEST_TIMEOUT: new ApiError(408, 'request_timeout', 'The request took too long to arrive.', { retryable: true }),
};

/**
 * Errors Node's HTTP parser meets before Fastify sees a request (headers too large, a NUL in a
 * header, a malformed request line): answered as problem documents too, then the socket closes.
 */
export function clientErrorHandler(this: FastifyInstance, error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const problem = CLIENT_ERRORS[error.code ?? ''] ?? new ApiError(400, 'bad_request', 'The request is not valid HTTP (for example a header holds a forbidden character).');
  const requestId = `req_${randomBase62(22)}`;
  this.log.debug({ err: error, requestId }, 'client error');
  const body = JSON.stringify(toProblem(problem, requestId));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${problem.status} ${statusTitle(problem.status)}\r\n` +
        `Content-Type: application/problem+json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `x-request-id: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

/**
 * A schema 422 joined by the route's own field checks on the members the schema let through. What they say
 * about a member the schema already named is left out, also where it only names it ("email or username is
 * required" when username was sent but invalid): that member was sent, it is just wrong.
 */
async function withFieldChecks(error: ApiError, request: FastifyRequest): Promise<ApiError> {
  const check = request.routeOptions.config?.fieldCheck;
  const body = request.body;
  if (!check || !body || typeof body !== 'object' || Array.isArray(body) || !error.errors) return error;
  const failed = new Set(error.errors.map((e) => e.field.split('.')[0]!));
  const passed = Object.fromEntries(Object.entries(body as Record<string, unknown>).filter(([key]) => !failed.has(key)));
  const names = (message: string, member: string) => new RegExp(`(^|[^\\w.])${member.replace(/[^\w]/g, '\\$&')}([^\\w]|$)`).test(message);
  let more: FieldError[] = [];
  try {
    more = (await check(passed)).filter((e) => !failed.has(e.field.split('.')[0]!) && ![...failed].some((member) => names(e.message, member)));
  } catch {
    return error;
  }
  return more.length === 0 ? error : validationError([...error.errors, ...more]);
}

async function errorsPlugin(app: FastifyInstance) {
  app.setErrorHandler(async (raw: FastifyError, request, reply) => {
    let error = raw instanceof ApiError ? raw : fromFastifyError(raw, request);
    if (raw.validation && error.code === 'validation_failed') error = await withFieldChecks(error, request);
    // An ApiError is an answer given on purpose (a 502 about the platform included): no error, no stack.
    if (error.status >= 500 && !(raw instanceof ApiError)) request.log.error({ err: raw }, 'request failed');
    return sendProblem(reply, request, error);
  });

  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, request, new ApiError(404, 'not_found', `No route ${request.method} ${request.url.split('?')[0]}.`)),
  );
}

export default fp(errorsPlugin, { name: 'fangate-errors' });
