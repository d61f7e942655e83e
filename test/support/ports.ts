import { randomInt } from 'node:crypto';
import { createServer } from 'node:net';

/**
 * A port nobody listens on right now, for a server that starts on it a moment later. Taken below the kernel's
 * ephemeral range (32768–60999 on Linux), where a port the kernel hands out (listen(0)) could also go to an
 * outgoing connection of a test running beside this one before the server listens on it (EADDRINUSE).
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = randomInt(20_000, 32_768);
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
}
