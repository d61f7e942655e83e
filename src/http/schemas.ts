import { type TSchema, Type } from 'typebox';
import { resolveNamed } from './components.js';

/** Request bodies reject unknown members, so a misspelt field is a 422, not silently ignored. */
export const Body = <T extends Record<string, TSchema>>(properties: T, options: Record<string, unknown> = {}) =>
  Type.Object(properties, { additionalProperties: false, ...options });

/**
 * Text FanGate later sends as an HTTP header (user agents, x-bc, cookies): visible ASCII and
 * Latin-1 only. CR/LF, control characters, emoji or U+202E would be refused by the HTTP client at
 * every retry of the job, so they are refused here, at the door.
 */
export const HEADER_VALUE_PATTERN = '^[\\x20-\\x7E\\xA0-\\xFF]+$';
export const HeaderText = (options: { minLength?: number; maxLength: number; description?: string; examples?: unknown[] }) =>
  Type.String({ minLength: 1, ...options, pattern: HEADER_VALUE_PATTERN });

export const Timestamp = Type.String({ format: 'date-time', examples: ['2026-11-22T19:00:00.000Z'] });

export const PageQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20, description: 'Items per page (1-100).' }),
  cursor: Type.Optional(Type.String({ maxLength: 200, description: '`next_cursor` of the previous page.' })),
});

/** A page of items; its example is built from the item's own example. */
export const PageOf = <T extends TSchema>(item: T) => {
  const itemExample = ((resolveNamed(item) ?? item) as { examples?: unknown[] }).examples?.[0];
  return Type.Object(
    {
      data: Type.Array(item),
      has_more: Type.Boolean({ description: 'More items follow: ask again with `cursor` = `next_cursor`.' }),
      next_cursor: Type.Union([Type.String(), Type.Null()]),
    },
    itemExample === undefined ? {} : { examples: [{ data: [itemExample], has_more: true, next_cursor: 'MjAyNi0xMS0yMlQxOTowMDowMC4wMDBafGFjY3RfN1Ft' }] },
  );
};

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({ description: 'Same key + same body within 24 h returns the first response.', examples: ['5c1a3f0e-7a2b-4d55-9a57-0f6f0cfd2f11'] }),
  ),
});
