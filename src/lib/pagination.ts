import { ApiError } from './errors.js';

/** Opaque cursor over (created_at, id), the order every list is returned in (newest first). */
export interface Cursor {
  createdAt: Date;
  id: string;
}

export const encodeCursor = (c: Cursor): string =>
  Buffer.from(`${c.createdAt.toISOString()}|${c.id}`, 'utf8').toString('base64url');

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const ID = /^[A-Za-z0-9_]{1,64}$/;

/**
 * Only what encodeCursor makes is accepted: an ISO date PostgreSQL can hold (years 1-9999, not
 * the ±270,000 years a JavaScript Date allows) and an id of letters, digits and `_`.
 */
export function decodeCursor(raw: string | undefined): Cursor | undefined {
  if (!raw) return undefined;
  const parts = Buffer.from(raw, 'base64url').toString('utf8').split('|');
  const [at, id] = parts;
  const createdAt = new Date(at ?? '');
  if (parts.length !== 2 || !id || !ID.test(id) || !at || !ISO.test(at) || Number.isNaN(createdAt.getTime()) || createdAt.getUTCFullYear() < 1 || createdAt.toISOString() !== at) {
    throw new ApiError(422, 'validation_failed', 'cursor is not a cursor this API returned: pass next_cursor of the previous page unchanged.', {
      errors: [{ field: 'cursor', message: 'cursor is not a cursor this API returned' }],
    });
  }
  return { createdAt, id };
}

export interface Page<T> {
  data: T[];
  has_more: boolean;
  next_cursor: string | null;
}

/** Rows fetched with limit + 1 become a page; the extra row only says there is more. */
export function toPage<R extends { created_at: Date; id: string }, T>(rows: R[], limit: number, map: (row: R) => T): Page<T> {
  const hasMore = rows.length > limit;
  const pageRows = hasMore ? rows.slice(0, limit) : rows;
  const last = pageRows[pageRows.length - 1];
  return {
    data: pageRows.map(map),
    has_more: hasMore,
    next_cursor: hasMore && last ? encodeCursor({ createdAt: last.created_at, id: last.id }) : null,
  };
}
