// The baseline of every HTTP figure (DESIGN 13): a bare Fastify route in its own process, with nothing FanGate adds
// (no auth, no database, no logging). Plain JavaScript, no loader, like the compiled server. `node bench/bare-child.mjs`
// listens on BENCH_BARE_PORT (or a free port) and prints its URL on stdout; as a forked child it also sends it over IPC.
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.get('/healthz', async () => ({ status: 'ok' }));
app.get('/json', async () => ({ id: 'att_0123456789abcdef', state: 'needs_otp', created_at: new Date().toISOString(), account: null }));
const url = await app.listen({ port: Number(process.env.BENCH_BARE_PORT ?? 0), host: '127.0.0.1' });
console.log(url);
process.send?.({ url });
const stop = () => void app.close().finally(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
process.once('disconnect', stop);
