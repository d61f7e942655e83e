import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createLogger, SECRET_FIELDS } from '../../src/logger.js';

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
