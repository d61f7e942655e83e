import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import type { TestApp } from '../support/app.js';

export interface Received {
  at: number;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  json: any;
}

/** Answers a request: a status (and headers/body), or nothing at all (hang). */
export type Responder = (req: Received, n: number) => { status: number; headers?: Record<string, string>; body?: string } | 'hang';

/** A webhook receiver on 127.0.0.1 that records every request and answers as the test says. */
export async function startReceiver(respond: Responder = () => ({ status: 200, body: 'ok' })) {
  const received: Received[] = [];
  const waiters: Array<() => void> = [];
  const hanging = new Set<ServerResponse>();
  let responder = respond;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      const r: Received = { at: Date.now(), path: req.url ?? '/', headers: req.headers, body, json };
      received.push(r);
      for (const w of waiters.splice(0)) w();
      const answer = responder(r, received.length);
      if (answer === 'hang') {
        hanging.add(res);
        return;
      }
      res.writeHead(answer.status, answer.headers ?? {});
      res.end(answer.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    port,
    received,
    setResponder(next: Responder) {
      responder = next;
    },
    /** Waits until `count` requests (matching `filter`) arrived. */
    async waitFor(count: number, timeoutMs = 15_000, filter: (r: Received) => boolean = () => true): Promise<Received[]> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const got = received.filter(filter);
        if (got.length >= count) return got;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`receiver got ${got.length} of ${count} requests in ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.min(left, 200));
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export type Receiver = Awaited<ReturnType<typeof startReceiver>>;

/** Creates an endpoint and answers it (with its secret). */
export async function createEndpoint(app: TestApp, body: Record<string, unknown>, key?: string) {
  const res = await app.api('/api/webhooks', { method: 'POST', body, ...(key ? { key } : {}) });
  expect(res.status, res.text).toBe(201);
  return res.body as { id: string; signing_secret: string; [k: string]: unknown };
}

/** Waits until the delivery list of an endpoint satisfies `done`. */
export async function waitForDeliveries(app: TestApp, endpointId: string, done: (data: any[]) => boolean, timeoutMs = 15_000): Promise<any[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await app.api(`/api/webhooks/${endpointId}/deliveries?limit=100`);
    expect(res.status, res.text).toBe(200);
    if (done(res.body.data)) return res.body.data;
    if (Date.now() > deadline) throw new Error(`deliveries never settled: ${JSON.stringify(res.body.data)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
