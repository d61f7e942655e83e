import { Writable } from 'node:stream';
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
