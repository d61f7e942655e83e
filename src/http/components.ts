import { type Static, type TSchema, Type } from 'typebox';

/**
 * Named schemas of the public contract (DESIGN 12). `named('Attempt', schema)` keeps the full schema
 * (with `$id: 'Attempt'`) in a registry that `registerComponents` adds once to Fastify
 * (`app.addSchema`), and returns a typed `$ref` to it: routes validate and serialise through the
 * shared schema, and the OpenAPI document lists it once under `components.schemas` and refers to it.
 */

const registry = new Map<string, TSchema & { $id: string }>();

export function named<T extends TSchema>(name: string, schema: T) {
  if (registry.has(name)) throw new Error(`Schema ${name} is named twice`);
  registry.set(name, { ...schema, $id: name });
  return Type.Unsafe<Static<T>>({ $ref: `${name}#` });
}

/** The full schema behind a `$ref` made by `named` (its examples, for pages and documentation). */
export function resolveNamed(schema: unknown): (TSchema & { $id: string; examples?: unknown[] }) | undefined {
  const ref = (schema as { $ref?: unknown } | null)?.$ref;
  return typeof ref === 'string' ? registry.get(ref.replace(/#$/, '')) : undefined;
}

export function componentExamples(name: string): unknown[] | undefined {
  return (registry.get(name) as { examples?: unknown[] } | undefined)?.examples;
}

/** Adds every named schema to the app once; call before registering routes. */
export function registerComponents(app: { addSchema(schema: unknown): unknown }): void {
  for (const schema of registry.values()) app.addSchema(schema);
}
