import pino, { type DestinationStream, type Logger } from 'pino';

/** pino's own asynchronous file writer (sonic-boom). */
type SonicBoom = ReturnType<typeof pino.destination>;

/**
 * Every path that can carry a secret. Bodies are not logged at all; these catch secrets
 * that reach a log line through headers, error objects or explicit context.
 */
export const SECRET_FIELDS = [
  'password', 'cookie', 'cookies', 'xbc', 'x-bc', 'code', 'totp_secret', 'token', 'secret', 'signing_secret',
  'key', 'api_key', 'apiKey', 'masterKey', 'auth_id', 'sess', 'session', 'resume_state', 'credentials',
];
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-bc"]',
  'req.headers["idempotency-key"]',
  'res.headers["set-cookie"]',
  // Top level in bracket form: a bare quoted name (`"password"`) is no path to pino and redacts nothing.
  ...SECRET_FIELDS.flatMap((f) => [`[${JSON.stringify(f)}]`, `*[${JSON.stringify(f)}]`, `*.*[${JSON.stringify(f)}]`]),
];

/** Paths whose segments are credentials themselves (the mobile hand-off code). */
const SECRET_PATH = /(\/mobile-auth\/)[^/?#]+/;
/** The Link page's token (`/link/<43 characters>`, and the page's own calls below it). */
const LINK_TOKEN_PATH = /^(\/link\/)[A-Za-z0-9]{43}(?![A-Za-z0-9])/;
export const redactUrl = (url: string): string => url.replace(SECRET_PATH, '$1[redacted]').replace(LINK_TOKEN_PATH, '$1[redacted]');

export function createLogger(options: { level: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: options.level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: {
        req: (req: { id: string; method: string; url: string; ip?: string }) => ({ id: req.id, method: req.method, url: redactUrl(req.url), ip: req.ip }),
        err: pino.stdSerializers.err,
      },
    },
    options.destination ?? bufferedStdout(),
  );
}

/** How long a log line may wait in the buffer at most. */
const LOG_FLUSH_MS = 250;

/**
 * Standard output, asynchronous and buffered: a log line never blocks a request on a write, and lines go out
 * 4 KiB at a time instead of one write each (a tenth of a plain request's CPU went to those writes), at the
 * latest after LOG_FLUSH_MS, and all of them when the process exits.
 */
function bufferedStdout(): DestinationStream {
  const batcher = new LineBatcher(pino.destination({ dest: 1, sync: false }), 4096);
  setInterval(() => {
    try {
      batcher.flush();
    } catch {
      // Not open yet, or closed at exit: the next tick or the exit flush writes the lines.
    }
  }, LOG_FLUSH_MS).unref();
  process.once('exit', () => {
    try {
      batcher.flushSync();
    } catch {
      // stdout closed: nothing left to write to.
    }
  });
  return batcher;
}

/**
 * Gathers lines and hands them to sonic-boom a batch at a time. sonic-boom can batch by itself (`minLength`),
 * but then measures the byte length of all it holds on every line it takes: 1–3 µs per log line at 4 KiB,
 * as much as pino's whole serialisation of a request line.
 */
class LineBatcher implements DestinationStream {
  #lines: string[] = [];
  #chars = 0;
  readonly #out: SonicBoom;
  readonly #batchChars: number;

  constructor(out: SonicBoom, batchChars: number) {
    this.#out = out;
    this.#batchChars = batchChars;
  }

  write(line: string): void {
    this.#lines.push(line);
    this.#chars += line.length;
    if (this.#chars >= this.#batchChars) this.#handOver();
  }

  flush(callback?: (error?: Error) => void): void {
    this.#handOver();
    this.#out.flush(callback);
  }

  flushSync(): void {
    this.#handOver();
    this.#out.flushSync();
  }

  #handOver(): void {
    if (this.#lines.length === 0) return;
    const batch = this.#lines.length === 1 ? this.#lines[0]! : this.#lines.join('');
    this.#lines = [];
    this.#chars = 0;
    this.#out.write(batch);
  }
}
