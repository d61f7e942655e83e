/**
 * Domain errors. Services throw these on purpose; only `http/` turns them into problem documents
 * (RFC 9457), so no domain needs to know about HTTP beyond a status number.
 */
export interface FieldError {
  field: string;
  message: string;
}

export interface ApiErrorOptions {
  retryable?: boolean;
  retryAfterSec?: number;
  errors?: FieldError[];
  /** Extra members of the problem document (e.g. `existing_account_id`). */
  extra?: Record<string, unknown>;
}

/** An error a route or service throws on purpose; the HTTP error handler turns it into a problem. */
export class ApiError extends Error {
  readonly retryable: boolean;
  readonly retryAfterSec: number | undefined;
  readonly errors: FieldError[] | undefined;
  readonly extra: Record<string, unknown> | undefined;

  constructor(
    readonly status: number,
    readonly code: string,
    detail: string,
    options: ApiErrorOptions = {},
  ) {
    super(detail);
    this.name = 'ApiError';
    this.retryable = options.retryable ?? (status === 429 || status === 503);
    this.retryAfterSec = options.retryAfterSec;
    this.errors = options.errors;
    this.extra = options.extra;
  }
}

export const notFound = (what: string) => new ApiError(404, 'not_found', `${what} was not found.`);

/**
 * The client hung up before its answer: nobody reads this problem. Thrown to end the handler as an expected
 * outcome (499, as nginx names it), never a 500 or an error log line of FanGate's.
 */
export const callerGone = () => new ApiError(499, 'client_closed_request', 'The client closed the connection before the answer was sent.', { retryable: true });

/** "is required" → "password is required": every message names its field, so it reads alone. */
export function fieldMessage(field: string, message: string): string {
  if (message.startsWith(`${field} `) || !/^[a-z]/.test(message)) return message;
  return `${field} ${message}`;
}

/** A 422 naming every bad field; the detail repeats the messages so a client showing only it still helps. */
export function validationError(errors: FieldError[]): ApiError {
  const named = errors.map((e) => ({ field: e.field, message: fieldMessage(e.field, e.message) }));
  const n = named.length;
  const stop = (text: string) => (/[.!?]$/.test(text) ? text : `${text}.`);
  const detail = n === 1 ? stop(named[0]!.message) : `The request has ${n} invalid fields: ${named.map((e) => e.message).join('; ')}.`;
  return new ApiError(422, 'validation_failed', detail, { errors: named });
}
