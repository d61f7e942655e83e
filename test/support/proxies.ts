import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * Real local proxies for tests. Outgoing connections can be bound to `localAddress` (e.g. 127.0.0.2)
 * so the server behind the proxy sees another remote address than the test process.
 */

export interface ProxyOptions {
  /** Source address of the proxy's outgoing connections. */
  localAddress?: string;
  /** Require these credentials (HTTP: Proxy-Authorization Basic; SOCKS5: username/password method). */
  auth?: { username: string; password: string };
}

export interface TestProxy {
  /** `http://127.0.0.1:port` or `socks5://127.0.0.1:port`, without credentials. */
  url: string;
  host: string;
  port: number;
  /** Proxied connections/requests accepted so far (after authentication). */
  readonly connections: number;
  close(): Promise<void>;
}

/** HTTP proxy: CONNECT tunnels and plain absolute-URI forwarding. */
export async function startHttpProxy(options: ProxyOptions = {}): Promise<TestProxy> {
  let connections = 0;
  const expected = options.auth
    ? `Basic ${Buffer.from(`${options.auth.username}:${options.auth.password}`).toString('base64')}`
    : undefined;
  const authorised = (request: http.IncomingMessage) => !expected || request.headers['proxy-authorization'] === expected;
  const server = http.createServer();

  server.on('request', (request, response) => {
    if (!authorised(request)) {
      response.writeHead(407, { 'proxy-authenticate': 'Basic realm="test-proxy"' }).end();
      return;
    }
    let target: URL;
    try {
      target = new URL(request.url ?? '');
      if (target.protocol !== 'http:') throw new Error('only http:// is forwarded');
    } catch {
      response.writeHead(400).end('absolute http:// URI required');
      return;
    }
    connections++;
    const headers = { ...request.headers };
    delete headers['proxy-authorization'];
    delete headers['proxy-connection'];
    const upstream = http.request(
      {
        host: target.hostname,
        port: target.port || 80,
        method: request.method,
        path: `${target.pathname}${target.search}`,
        headers,
        localAddress: options.localAddress,
        agent: false,
      },
      (upstreamResponse) => {
        response.writeHead(upstreamResponse.statusCode ?? 502, upstreamResponse.rawHeaders);
        upstreamResponse.pipe(response);
      },
    );
    upstream.on('error', () => {
      if (!response.headersSent) response.writeHead(502);
      response.end();
    });
    request.pipe(upstream);
  });

  server.on('connect', (request: http.IncomingMessage, client: Duplex, head: Buffer) => {
    if (!authorised(request)) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test-proxy"\r\n\r\n');
      return;
    }
    const [host, port] = splitHostPort(request.url ?? '');
    connections++;
    const upstream = net.connect({ host, port, localAddress: options.localAddress });
    upstream.once('connect', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n'));
    client.on('error', () => upstream.destroy());
  });

  return listen(server, 'http', () => connections);
}

/** SOCKS5 proxy (RFC 1928 CONNECT, RFC 1929 username/password when `auth` is set). */
export async function startSocksProxy(options: ProxyOptions = {}): Promise<TestProxy> {
  let connections = 0;
  const server = net.createServer((client) => {
    client.on('error', () => client.destroy());
    socksHandshake(client, options)
      .then((target) => {
        if (!target) return client.destroy();
        connections++;
        const upstream = net.connect({ host: target.host, port: target.port, localAddress: options.localAddress });
        upstream.once('connect', () => {
          // Reply: succeeded, bound address 0.0.0.0:0 (clients do not use it).
          client.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
          upstream.pipe(client);
          client.pipe(upstream);
        });
        upstream.on('error', () => client.end(Buffer.from([5, 5, 0, 1, 0, 0, 0, 0, 0, 0])));
        client.on('close', () => upstream.destroy());
      })
      .catch(() => client.destroy());
  });
  return listen(server, 'socks5', () => connections);
}

/** Runs the SOCKS5 greeting, optional auth and request; the CONNECT target, or null when refused. */
async function socksHandshake(
  client: net.Socket,
  options: ProxyOptions,
): Promise<{ host: string; port: number } | null> {
  const [version, methodCount] = await readBytes(client, 2);
  if (version !== 5) return null;
  const methods = await readBytes(client, methodCount!);
  const method = options.auth ? 2 : 0;
  if (!methods.includes(method)) {
    client.end(Buffer.from([5, 0xff]));
    return null;
  }
  client.write(Buffer.from([5, method]));
  if (options.auth) {
    const [, userLength] = await readBytes(client, 2);
    const username = (await readBytes(client, userLength!)).toString();
    const [passwordLength] = await readBytes(client, 1);
    const password = (await readBytes(client, passwordLength!)).toString();
    const ok = username === options.auth.username && password === options.auth.password;
    client.write(Buffer.from([1, ok ? 0 : 1]));
    if (!ok) {
      client.end();
      return null;
    }
  }
  const [, command, , addressType] = await readBytes(client, 4);
  let host: string;
  if (addressType === 1) host = [...(await readBytes(client, 4))].join('.');
  else if (addressType === 3) host = (await readBytes(client, (await readBytes(client, 1))[0]!)).toString();
  else if (addressType === 4) host = (await readBytes(client, 16)).toString('hex').match(/.{4}/g)!.join(':');
  else return null;
  const port = (await readBytes(client, 2)).readUInt16BE(0);
  if (command !== 1) {
    // Only CONNECT: "command not supported".
    client.end(Buffer.from([5, 7, 0, 1, 0, 0, 0, 0, 0, 0]));
    return null;
  }
  return { host, port };
}

/** Reads exactly `length` bytes from a socket in paused mode. */
async function readBytes(socket: net.Socket, length: number): Promise<Buffer> {
  for (;;) {
    const chunk = socket.read(length) as Buffer | null;
    if (chunk) {
      if (chunk.length < length) throw new Error('connection closed mid-handshake');
      return chunk;
    }
    if (socket.readableEnded || socket.destroyed) throw new Error('connection closed mid-handshake');
    await new Promise<void>((resolve) => {
      const wake = () => {
        socket.off('readable', wake);
        socket.off('close', wake);
        resolve();
      };
      socket.on('readable', wake);
      socket.on('close', wake);
    });
  }
}

function splitHostPort(authority: string): [string, number] {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(authority);
  return match ? [match[1]!, Number(match[2])] : [authority, 443];
}

async function listen(
  server: net.Server,
  scheme: 'http' | 'socks5',
  connections: () => number,
): Promise<TestProxy> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    host: '127.0.0.1',
    port,
    get connections() {
      return connections();
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
