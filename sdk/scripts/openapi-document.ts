import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createFanGate } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';

/**
 * The OpenAPI document exactly as `GET /openapi.json` serves it, built from the app without listening
 * (an in-memory database, no workers, no sandbox): the SDK's types are generated from it.
 */
export async function buildOpenApiDocument(env: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const dataDir = await mkdtemp(join(tmpdir(), 'fangate-openapi-'));
  const silent = new Writable({ write: (_chunk, _enc, done) => done() });
  const config = loadConfig({
    FANGATE_DATA_DIR: dataDir,
    FANGATE_SANDBOX: 'off',
    FANGATE_MASTER_KEY: `doc:${Buffer.alloc(32, 1).toString('base64')}`,
    FANGATE_ADMIN_TOKEN: 'openapi-document-only-0000000000',
    FANGATE_LOG_LEVEL: 'fatal',
    ...env,
  });
  const fangate = await createFanGate({ config, logger: createLogger({ level: 'fatal', destination: silent }), inMemory: true });
  try {
    await fangate.http.ready();
    return fangate.http.swagger() as unknown as Record<string, unknown>;
  } finally {
    await fangate.stop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  }
}
