import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import type { LazyCompile } from './validation.js';

type Serialize = (data: unknown) => string;
type RouteResponse = { schema?: unknown; method: string; url: string; httpStatus: string; contentType?: string };

/**
 * `schemaController.compilersFactory.buildSerializer` for Fastify: fast-json-stringify, as Fastify's default, but a
 * response schema compiles the first time an answer with that status is sent, not at start (every route declares
 * several problem statuses that most processes never send), and equal schemas share one serialiser (the problem
 * schema of every route and status). `track` receives each compile step (see `createValidatorBuilder`).
 */
export function createSerializerBuilder(track: (compile: LazyCompile) => void = () => undefined) {
  const selector = SerializerSelector();
  const pools = new Map<string, Map<string, Serialize>>();
  return (externalSchemas: unknown, serializerOptions?: Record<string, unknown>) => {
    const compile = selector(externalSchemas, serializerOptions);
    // Fastify asks once per plugin context, with the same named schemas: contexts share one pool.
    let shared: Map<string, Serialize> | undefined;
    const pool = () => {
      if (shared) return shared;
      const key = JSON.stringify([externalSchemas, serializerOptions ?? null]);
      shared = pools.get(key);
      if (!shared) pools.set(key, (shared = new Map()));
      return shared;
    };
    return (route: RouteResponse): Serialize => {
      let serialize: Serialize | undefined;
      const compiled = () => {
        if (serialize) return serialize;
        const key = JSON.stringify(route.schema);
        serialize = pool().get(key);
        if (!serialize) pool().set(key, (serialize = compile(route as never) as Serialize));
        return serialize;
      };
      track(compiled);
      return (data) => compiled()(data);
    };
  };
}
