import type { Bindings, ChildLoggerOptions, Level, LevelWithSilentOrString, Logger } from 'pino';
import pino from 'pino';

// msgPrefixSym is missing from pino's type definitions.
const pinoSymbols = pino.symbols as typeof pino.symbols & { readonly msgPrefixSym: symbol };

/**
 * The logger of one request (`request.log`), made only when something logs through it. Fastify makes a child
 * logger for every request; pino runs its redaction over the child's bindings as it makes it, which was the
 * largest single cost of a plain request (bench/http.ts profile). Most requests log nothing but the request
 * line, which `OneLinePerRequest` writes without it.
 */
export class LazyRequestLogger {
  #made: Logger | undefined;
  readonly #parent: Logger;
  readonly #bindings: Bindings;
  readonly #options: ChildLoggerOptions;

  constructor(parent: Logger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  get #log(): Logger {
    return (this.#made ??= this.#parent.child(this.#bindings, this.#options));
  }

  get level(): LevelWithSilentOrString {
    return this.#made?.level ?? this.#options.level ?? this.#parent.level;
  }
  set level(level: LevelWithSilentOrString) {
    this.#log.level = level;
  }
  isLevelEnabled(level: string): boolean {
    return this.#made ? this.#made.isLevelEnabled(level) : this.#options.level ? this.#log.isLevelEnabled(level) : this.#parent.isLevelEnabled(level);
  }
  bindings(): Bindings {
    return this.#log.bindings();
  }
  child(bindings: Bindings, options?: ChildLoggerOptions): Logger {
    return this.#log.child(bindings, options);
  }
  fatal(...args: unknown[]): void {
    this.#write('fatal', args);
  }
  error(...args: unknown[]): void {
    this.#write('error', args);
  }
  warn(...args: unknown[]): void {
    this.#write('warn', args);
  }
  info(...args: unknown[]): void {
    this.#write('info', args);
  }
  debug(...args: unknown[]): void {
    this.#write('debug', args);
  }
  trace(...args: unknown[]): void {
    this.#write('trace', args);
  }
  silent(): void {}

  #write(level: Level, args: unknown[]): void {
    // A level that is off costs nothing, as with pino's own no-op methods.
    if (!this.isLevelEnabled(level)) return;
    (this.#log[level] as (...a: unknown[]) => void)(...args);
  }
}

/** What the line of a completed request holds (the shape `createLogger`'s `req` serializer gives `req`). */
export interface RequestLine {
  reqId: string;
  method: string;
  /** Already scrubbed of secret segments (redactUrl). */
  url: string;
  ip: string | undefined;
  statusCode: number;
  responseTime: number;
  code?: string;
}

/**
 * Writes the line of a completed request, the one line nearly every request logs, straight to the logger's
 * destination: byte for byte what `logger.info({ reqId, req, res, responseTime, code }, 'request completed')`
 * writes (test/foundation/logger.test.ts compares the two), without pino's generic pass over the object
 * (serializers, a JSON.stringify per value): 4.2 → 1.7 µs a line in a micro-benchmark, ≈ 5 % of a whoami.
 * A logger that reshapes its lines (mixin, message prefix or key, nesting, a log formatter or stream hook)
 * writes them through pino instead; OneLinePerRequest's has no redaction of these fields.
 */
export function requestLineWriter(logger: Logger): (line: RequestLine) => void {
  const { streamSym, chindingsSym, timeSym, needsMetadataGsym, mixinSym, msgPrefixSym, messageKeySym, nestedKeySym, hooksSym, formattersSym } = pinoSymbols;
  const target = logger as unknown as Record<symbol, unknown>;
  const stream = target[streamSym] as { write(line: string): void } & Record<symbol, unknown>;
  const hooks = target[hooksSym] as { streamWrite?: unknown } | undefined;
  const formatters = target[formattersSym] as { log?: unknown } | undefined;
  // A destination that wants each line's level and object (pino.multistream), or a logger that reshapes its
  // lines, gets them from pino itself.
  const reshaped = target[mixinSym] || target[msgPrefixSym] || target[messageKeySym] !== 'msg' || target[nestedKeySym] || hooks?.streamWrite || formatters?.log;
  if (stream[needsMetadataGsym] || reshaped) {
    return ({ reqId, method, url, ip, statusCode, responseTime, code }) =>
      logger.info({ reqId, req: { id: reqId, method, url, ip }, res: { statusCode }, responseTime, ...(code === undefined ? {} : { code }) }, 'request completed');
  }
  const bindings = target[chindingsSym] as string;
  const time = target[timeSym] as () => string;
  const head = `{"level":${logger.levels.values.info}`;
  return (line) => {
    const id = JSON.stringify(line.reqId);
    const ip = line.ip === undefined ? '' : `,"ip":${JSON.stringify(line.ip)}`;
    const responseTime = Number.isFinite(line.responseTime) ? line.responseTime : null;
    const code = line.code === undefined ? '' : `,"code":${JSON.stringify(line.code)}`;
    stream.write(
      `${head}${time()}${bindings},"reqId":${id},"req":{"id":${id},"method":${JSON.stringify(line.method)},"url":${JSON.stringify(line.url)}${ip}},"res":{"statusCode":${line.statusCode}},"responseTime":${responseTime}${code},"msg":"request completed"}\n`,
    );
  };
}
