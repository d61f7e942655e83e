/**
 * The sandbox platform alone, as a child of a benchmark (bench/support.ts startSandboxChild):
 * listens on a free loopback port, sends its URL to the parent over IPC, and ends with the parent.
 */
import { startSandbox } from '../src/sandbox/index.js';

const sandbox = await startSandbox({ port: 0, logger: false });
process.send?.({ url: sandbox.url });
const stop = () => void sandbox.close().finally(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
process.once('disconnect', stop); // the parent died or closed the channel
