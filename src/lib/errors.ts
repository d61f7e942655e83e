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

export function validationError(errors: FieldError[]): ApiError {
  const n = errors.length;
  return new ApiError(422, 'validation_failed', `The request has ${n} invalid field${n === 1 ? '' : 's'}.`, { errors });
}
