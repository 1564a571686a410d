import type { LogFn, Logger } from 'pino';

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/** The part of a pino logger the shim logs through. */
export type ShimLogger = Pick<Logger, Level> & {
  child(bindings: Record<string, unknown>): ShimLogger;
};

interface Pending {
  logger: DeferredLogger;
  level: Level;
  args: unknown[];
}

/**
 * Stands in for the shim's pino logger while the shim starts: the runtimes are spawned first and
 * pino (a file of its own, dist/vendor/pino.cjs) is loaded while they boot, off the cold start's
 * critical path.
 * What is logged meanwhile (a line or two) is kept in order and written through the real logger
 * once it is attached; children made before that get the real logger's children.
 */
export class DeferredLogger implements ShimLogger {
  private target: ShimLogger | undefined;
  /** Shared by a root and all its descendants, so the replay keeps their order. */
  private readonly pending: Pending[];

  readonly trace: LogFn = (...args: unknown[]) => this.log('trace', args);
  readonly debug: LogFn = (...args: unknown[]) => this.log('debug', args);
  readonly info: LogFn = (...args: unknown[]) => this.log('info', args);
  readonly warn: LogFn = (...args: unknown[]) => this.log('warn', args);
  readonly error: LogFn = (...args: unknown[]) => this.log('error', args);
  readonly fatal: LogFn = (...args: unknown[]) => this.log('fatal', args);

  constructor(
    private readonly parent?: DeferredLogger,
    private readonly bindings: Record<string, unknown> = {},
  ) {
    this.pending = parent ? parent.pending : [];
  }

  child(bindings: Record<string, unknown>): ShimLogger {
    return this.resolved()?.child(bindings) ?? new DeferredLogger(this, bindings);
  }

  /** Sends what was logged so far, then everything after, to `logger`. Called on the root. */
  attach(logger: ShimLogger): void {
    this.target = logger;
    for (const { logger: from, level, args } of this.pending.splice(0)) from.log(level, args);
  }

  private resolved(): ShimLogger | undefined {
    if (!this.target && this.parent) this.target = this.parent.resolved()?.child(this.bindings);
    return this.target;
  }

  private log(level: Level, args: unknown[]): void {
    const target = this.resolved();
    if (target) (target[level] as (...args: unknown[]) => void).apply(target, args);
    else this.pending.push({ logger: this, level, args });
  }
}
