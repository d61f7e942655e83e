import { fileURLToPath } from 'node:url';

/**
 * A ready-made embedded database (initdb done, migrations and the job schema applied), made by
 * `fangate prepare` when the package is installed. A first start copies it instead of running
 * initdb, which halves the time to ready; without it FanGate simply runs initdb.
 *
 * Its own module because the path is relative to this file: the server bundle leaves it out and
 * imports it from dist/db/ (scripts/build-server.mjs), so it resolves the same from src/ and dist/.
 */
export const PGLITE_TEMPLATE_DIR = fileURLToPath(new URL('../../node_modules/.cache/fangate/pgdata-template', import.meta.url));
