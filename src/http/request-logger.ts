import type { Bindings, ChildLoggerOptions, Level, LevelWithSilentOrString, Logger } from 'pino';

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
