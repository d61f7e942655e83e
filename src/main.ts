/**
 * Process entry of the `fangate` command. `bin/fangate.js` runs the compiled copy (dist/main.js, built by
 * `npm run build:server`, which `npm install`/`npm ci` run); tests and `npm run dev` run this file through tsx.
 */
import { main } from './cli.js';

await main(process.argv.slice(2));
