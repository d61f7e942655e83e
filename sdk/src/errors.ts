import type { components } from './schema.js';

/** An RFC 9457 problem document as FanGate answers every error. */
export type Problem = components['schemas']['Problem'];

/** A FanGate answer with a problem document: `code`, `status`, `errors` (per field) and the rest, typed. */
export class FanGateProblemError extends Error {
  readonly status: number;
  readonly code: string;
  readonly retryable: boolean;
  readonly retryAfterSec: number | undefined;
  /** One entry per bad field (422 `validation_failed`). */
  readonly errors: { field: string; message: string }[];
  readonly requestId: string;

  constructor(readonly problem: Problem) {
    super(problem.detail);
    this.name = 'FanGateProblemError';
    this.status = problem.status;
    this.code = problem.code;
    this.retryable = problem.retryable;
    this.retryAfterSec = problem.retryAfterSec;
    this.errors = problem.errors ?? [];
    this.requestId = problem.request_id;
  }
}

/** An attempt that ended `completed_failed`: `code` is its `error.code` (`invalid_credentials`, `2fa_failed`, …). */
export class FanGateAttemptFailedError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly attemptId: string,
  ) {
    super(message);
    this.name = 'FanGateAttemptFailedError';
  }
}

function isProblem(value: unknown): value is Problem {
  return typeof value === 'object' && value !== null && typeof (value as Problem).code === 'string' && typeof (value as Problem).status === 'number';
}

/** The data of an openapi-fetch result, or its problem document thrown as a FanGateProblemError. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.error !== undefined || !result.response.ok) {
    const error = result.error;
    if (isProblem(error)) throw new FanGateProblemError(error);
    throw new FanGateProblemError({
      type: 'about:blank',
      title: result.response.statusText,
      status: result.response.status,
      detail: `FanGate answered ${result.response.status} without a problem document.`,
      message: `FanGate answered ${result.response.status} without a problem document.`,
      code: 'unexpected_response',
      retryable: result.response.status >= 500,
      request_id: result.response.headers.get('x-request-id') ?? '',
    });
  }
  return result.data as T;
}
