import type { FastifyBaseLogger } from 'fastify';
import { buildSandboxApp } from './server.js';

export * from './identities.js';
export type { Platform } from './users.js';

export interface SandboxOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1: the control API has no auth. */
  host?: string;
  /** A pino logger, or false (default) for silence. */
  logger?: FastifyBaseLogger | false;
  /** Milliseconds since the epoch; inject to move time in tests (`+expire`, hourly lock, TOTP). */
  clock?: () => number;
}

export interface RunningSandbox {
  /** Base URL, e.g. http://127.0.0.1:8081 (no trailing slash). */
  url: string;
  port: number;
  close(): Promise<void>;
  /** Forgets all users, sessions and counters (same as POST /__sandbox/reset). */
  reset(): void;
}

/** Starts the sandbox platform (DESIGN.md section 7; reference in docs/sandbox.md). */
export async function startSandbox(options: SandboxOptions = {}): Promise<RunningSandbox> {
  let url = '';
  const { app, state } = await buildSandboxApp({
    logger: options.logger ?? false,
    ...(options.clock ? { clock: options.clock } : {}),
    baseUrl: () => url,
  });
  const host = options.host ?? '127.0.0.1';
  try {
    await app.listen({ port: options.port ?? 0, host });
  } catch (error) {
    await app.close(); // e.g. EADDRINUSE: do not leave a half-started app behind
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : (options.port ?? 0);
  // A wildcard bind is reached through loopback; links handed out must be dialable.
  const dialHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  url = `http://${dialHost.includes(':') ? `[${dialHost}]` : dialHost}:${port}`;
  return {
    url,
    port,
    close: () => app.close(),
    reset: () => state.reset(),
  };
}
