import { ApiError } from './errors.js';

/** Opaque cursor over (created_at, id), the order every list is returned in (newest first). */
export interface Cursor {
  createdAt: Date;
  id: string;
}

export const encodeCursor = (c: Cursor): string =>
  Buffer.from(`${c.createdAt.toISOString()}|${c.id}`, 'utf8').toString('base64url');

export function decodeCursor(raw: string | undefined): Cursor | undefined {
  if (!raw) return undefined;
  const [at, id] = Buffer.from(raw, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(at ?? '');
  if (!id || Number.isNaN(createdAt.getTime())) {
    throw new ApiError(422, 'validation_failed', 'The cursor is not one this API returned.', {
      errors: [{ field: 'cursor', message: 'is not a valid cursor' }],
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
