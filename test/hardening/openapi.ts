/** The served OpenAPI document as a list of operations, for suites generated from it. */

export interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required?: boolean;
  schema?: Schema;
}

export interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: Schema[];
  oneOf?: Schema[];
  examples?: unknown[];
  example?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  default?: unknown;
  format?: string;
  $ref?: string;
}

export interface Operation {
  method: string;
  path: string;
  parameters: Parameter[];
  body: Schema | undefined;
  public: boolean;
  admin: boolean;
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

export function operationsOf(doc: any): Operation[] {
  const resolve = (schema: any): any => {
    if (schema && typeof schema === 'object' && typeof schema.$ref === 'string' && schema.$ref.startsWith('#/')) {
      const target = schema.$ref
        .slice(2)
        .split('/')
        .reduce((node: any, key: string) => node?.[key.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
      return resolve(target);
    }
    return schema;
  };
  const deep = (schema: any, depth = 0): any => {
    const s = resolve(schema);
    if (!s || typeof s !== 'object' || depth > 6) return s;
    const out: any = Array.isArray(s) ? [] : {};
    for (const [k, v] of Object.entries(s)) out[k] = k === 'examples' || k === 'example' ? v : deep(v, depth + 1);
    return out;
  };
  const operations: Operation[] = [];
  for (const [path, item] of Object.entries<any>(doc.paths ?? {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const parameters = [...(item.parameters ?? []), ...(op.parameters ?? [])].map((p: any) => deep(p));
      const media = op.requestBody?.content?.['application/json'];
      let body = deep(media?.schema);
      // @fastify/swagger moves a body schema's examples onto the media type.
      const mediaExamples = media?.examples ? Object.values<any>(media.examples).map((e) => e.value) : media?.example !== undefined ? [media.example] : [];
      if (body && !body.examples?.length && mediaExamples.length > 0) body = { ...body, examples: mediaExamples };
      const security = op.security ?? doc.security ?? [];
      operations.push({
        method: method.toUpperCase(),
        path,
        parameters,
        body,
        public: Array.isArray(security) && security.length === 0,
        admin: path.startsWith('/admin'),
      });
    }
  }
  return operations;
}

/** A value the schema accepts, from its examples or its shape. */
export function sample(schema: Schema | undefined, depth = 0): unknown {
  if (!schema || depth > 5) return undefined;
  if (schema.examples?.length) return schema.examples[0];
  if (schema.example !== undefined) return schema.example;
  if (schema.const !== undefined) return schema.const;
  if (schema.enum?.length) return schema.enum[0];
  if (schema.default !== undefined) return schema.default;
  const branches = schema.anyOf ?? schema.oneOf;
  if (branches?.length) return sample(branches.find((b) => b.type !== 'null') ?? branches[0], depth + 1);
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const name of schema.required ?? []) out[name] = sample(schema.properties?.[name], depth + 1);
      return out;
    }
    case 'array':
      return [sample(schema.items, depth + 1)];
    case 'integer':
    case 'number':
      return schema.minimum ?? 1;
    case 'boolean':
      return true;
    case 'null':
      return null;
    default:
      if (schema.format === 'email') return 'fuzz@sandbox.test';
      if (schema.format === 'uri') return 'https://example.test/';
      return 'x'.repeat(Math.max(1, schema.minLength ?? 1));
  }
}
