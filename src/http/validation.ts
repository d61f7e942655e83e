import { AjvCompiler } from '@fastify/ajv-compiler';

/**
 * Request validation. Bodies are JSON and typed: no coercion there, so `"password": 5` or
 * `"customProxy": 0` is an error instead of silently becoming "5" or null. Query strings, path
 * parameters and headers are text by nature and keep coercion (`?limit=5`).
 * Every compiled validator also refuses strings PostgreSQL cannot store (NUL) and strings that
 * are not well-formed UTF-16 (lone surrogates), wherever they are, so no route can 500 on them.
 */

export interface ValidationIssue {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
  schemaPath?: string;
}

type Validate = ((data: unknown) => boolean) & { errors?: ValidationIssue[] | null };
type RouteSchema = { schema: unknown; method: string; url: string; httpPart?: string };

const BASE = { removeAdditional: false, allErrors: true, useDefaults: true } as const;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const pointer = (path: string, key: string) => (/[~/]/.test(key) ? `${path}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}` : `${path}/${key}`);

function textIssue(instancePath: string, value: string): ValidationIssue | undefined {
  if (value.includes('\u0000')) return { instancePath, keyword: 'noNul', params: {}, message: 'must not contain NUL characters' };
  if (LONE_SURROGATE.test(value)) return { instancePath, keyword: 'wellFormed', params: {}, message: 'must be well-formed Unicode (it holds a lone surrogate)' };
  return undefined;
}

/** Every string (and member name) or number in a parsed value that cannot be stored or sent on; iterative, so depth cannot overflow the stack. */
export function unstorableText(value: unknown): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const stack: [unknown, string][] = [[value, '']];
  while (stack.length > 0 && issues.length < 50) {
    const [current, path] = stack.pop()!;
    if (typeof current === 'string') {
      const issue = textIssue(path, current);
      if (issue) issues.push(issue);
    } else if (typeof current === 'number' && !Number.isFinite(current)) {
      // `1e999` parses (JSON) or coerces (`?limit=1e400`) to Infinity, which no column holds.
      issues.push({ instancePath: path, keyword: 'finite', params: {}, message: 'must be a finite number' });
    } else if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i--) stack.push([current[i], `${path}/${i}`]);
    } else if (current !== null && typeof current === 'object') {
      for (const [key, member] of Object.entries(current)) {
        const keyIssue = textIssue(pointer(path, key), key);
        if (keyIssue) issues.push({ ...keyIssue, message: `has a member name that ${keyIssue.message}` });
        else stack.push([member, pointer(path, key)]);
      }
    }
  }
  return issues;
}

/** Compiles a route schema when it is first needed (see `createValidatorBuilder`); `compile` runs it now. */
export type LazyCompile = () => void;

/**
 * `schemaController.compilersFactory.buildValidator` for Fastify: one AJV without coercion for bodies, one with it
 * for the rest, each shared by every plugin context (Fastify asks once per context; each AJV compiles the JSON Schema
 * meta-schema and checks every named schema when it is made). A route's validator compiles on its first request,
 * not at start: most routes of a process are never called, and compiling them all was a third of the start-up CPU.
 * `track` receives each route's compile step, so a test can compile them all and see that none is broken.
 */
export function createValidatorBuilder(track: (compile: LazyCompile) => void = () => undefined) {
  const factory = AjvCompiler();
  return (externalSchemas: Record<string, unknown>, serverOptions: { customOptions?: Record<string, unknown>; plugins?: unknown[] } = {}) => {
    const compilerFor = (httpPart: string | undefined) =>
      factory(externalSchemas as never, {
        ...serverOptions,
        customOptions: { ...serverOptions.customOptions, ...BASE, coerceTypes: httpPart === 'body' ? false : 'array' },
      } as never) as unknown as (route: RouteSchema) => Validate;
    return (route: RouteSchema): Validate => {
      let validate: Validate | undefined;
      const compiled = () => (validate ??= compilerFor(route.httpPart)(route));
      track(compiled);
      const wrapped: Validate = (data: unknown) => {
        const check = compiled();
        const valid = check(data);
        const text = unstorableText(data);
        if (valid && text.length === 0) {
          wrapped.errors = null;
          return true;
        }
        wrapped.errors = [...(valid ? [] : (check.errors ?? [])), ...text];
        return wrapped.errors.length === 0;
      };
      return wrapped;
    };
  };
}
