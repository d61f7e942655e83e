/**
 * A webhook receiver alone, as a child of bench/webhooks.ts: answers every POST 200 at once, and records
 * the lag of each delivery (now − the event's `created_at`, same machine clock). IPC: sends {url} when
 * listening; answers {type:'stats'} with {count, lags}, {type:'count'} with {count} alone (polled while waiting: no
 * lags array to copy each time) and {type:'reset'} by clearing them.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

let count = 0;
let lags: number[] = [];
const ids = new Set<string>();
let duplicates = 0;

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const now = Date.now();
    count++;
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: string; created_at?: string };
      if (body.created_at && body.id?.startsWith('evt_')) {
        lags.push(now - Date.parse(body.created_at));
        if (ids.has(body.id)) duplicates++;
        ids.add(body.id);
      }
    } catch {
      /* the baseline's load generator sends the same body again and again */
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
});
server.keepAliveTimeout = 10_000;
server.listen(0, '127.0.0.1', () => process.send?.({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook` }));
process.on('message', (message: { type: string }) => {
  if (message.type === 'stats') process.send?.({ type: 'stats', count, lags, duplicates });
  if (message.type === 'count') process.send?.({ type: 'count', count });
  if (message.type === 'reset') {
    count = 0;
    lags = [];
    ids.clear();
    duplicates = 0;
  }
});
const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('disconnect', stop);
