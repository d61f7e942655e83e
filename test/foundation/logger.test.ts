import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { createLogger, SECRET_FIELDS } from '../../src/logger.js';
import { type RequestLine, requestLineWriter } from '../../src/http/request-logger.js';

/** Logs one line into memory and returns it parsed. */
async function logLine(context: Record<string, unknown>): Promise<string> {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(chunk.toString());
      callback();
    },
  });
  createLogger({ level: 'info', destination }).info(context, 'line');
  await new Promise((resolve) => setImmediate(resolve));
  return lines.join('');
}

describe('log redaction', () => {
  it.each(SECRET_FIELDS)('redacts %s at the top level and nested one and two levels deep', async (field) => {
    const canary = `canary-${field}-value`;
    const line = await logLine({ [field]: `${canary}-0`, ctx: { [field]: `${canary}-1` }, a: { b: { [field]: `${canary}-2` } } });
    expect(line).not.toContain(canary);
    expect(JSON.parse(line)[field]).toBe('[redacted]');
  });

  it('keeps what is not secret', async () => {
    const line = JSON.parse(await logLine({ attemptId: 'att_1', state: 'needs_otp' }));
    expect(line).toMatchObject({ attemptId: 'att_1', state: 'needs_otp', msg: 'line' });
  });
});

describe('standard output', () => {
  const fixture = fileURLToPath(new URL('../fixtures/log-lines.ts', import.meta.url));
  /**
   * Runs the fixture; resolves with the parsed lines seen on stdout and how long after the fixture said it had
   * logged them (on stderr) the first of them came out.
   */
  function run(env: Record<string, string>): Promise<{ lines: Array<{ n: number }>; delayMs: number | null }> {
    return new Promise((resolve, reject) => {
      let loggedAt: number | null = null;
      let firstAt: number | null = null;
      let out = '';
      const child = spawn(process.execPath, ['--import', 'tsx', fixture], { env: { ...process.env, ...env } });
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        if (chunk.includes('logged')) loggedAt ??= Date.now();
      });
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        firstAt ??= Date.now();
        out += chunk;
      });
      child.once('error', reject);
      child.once('exit', () =>
        resolve({ lines: out.split('\n').filter(Boolean).map((l) => JSON.parse(l)), delayMs: loggedAt !== null && firstAt !== null ? Math.max(0, firstAt - loggedAt) : null }),
      );
    });
  }

  it('every line reaches stdout, in order, when the process exits right after writing them', async () => {
    const { lines } = await run({ LINES: '2000', EXIT: 'now' });
    expect(lines.map((l) => l.n)).toEqual(Array.from({ length: 2000 }, (_, i) => i));
  });

  it('a few lines wait for the buffer at most a moment, not for the exit', async () => {
    const { lines, delayMs } = await run({ LINES: '3', STAY_MS: '3000' });
    expect(lines.map((l) => l.n)).toEqual([0, 1, 2]);
    // Flushed within 250 ms of being logged; the process lives 3 s more.
    expect(delayMs).not.toBeNull();
    expect(delayMs!).toBeLessThan(2_000);
  });
});

describe('the request line', () => {
  /** Two loggers over one in-memory destination, on a frozen clock so their lines can be compared byte for byte. */
  function loggers() {
    const lines: string[] = [];
    const destination = { write: (line: string) => void lines.push(line) };
    const logger = createLogger({ level: 'info', destination }).child({}, { redact: [] });
    const frozen = (logger as unknown as Record<symbol, unknown>)[pino.symbols.timeSym] as () => string;
    const time = frozen();
    (logger as unknown as Record<symbol, unknown>)[pino.symbols.timeSym] = () => time;
    return { lines, logger, write: requestLineWriter(logger) };
  }

  it.each<RequestLine>([
    { reqId: 'req_1', method: 'GET', url: '/api/whoami', ip: '127.0.0.1', statusCode: 200, responseTime: 0.41234 },
    { reqId: 'client-id:1.2', method: 'POST', url: '/api/authenticate', ip: '::1', statusCode: 422, responseTime: 3, code: 'validation_failed' },
    { reqId: 'r', method: 'GET', url: '/api/x?q="quoted"\\\u00e9\u2028\n', ip: undefined, statusCode: 404, responseTime: 12.5, code: 'not_found' },
  ])('is what pino writes for the same fields ($method $url $statusCode)', ({ reqId, method, url, ip, statusCode, responseTime, code }) => {
    const { lines, logger, write } = loggers();
    write({ reqId, method, url, ip, statusCode, responseTime, code });
    const line = { reqId, req: { id: reqId, method, url, ip }, res: { statusCode }, responseTime };
    logger.info(code === undefined ? line : { ...line, code }, 'request completed');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toBe(lines[1]);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 30, msg: 'request completed', reqId, req: { method, url }, res: { statusCode } });
  });
});
