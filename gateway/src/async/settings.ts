import { ConfigError } from '../config.js';
import type { BacklogLimits } from './queue.js';
import type { AsyncWorkersOptions } from './workers.js';

/** The async side's tunables, from `HEARTH_ASYNC_*` environment variables; unset ones keep their defaults. */
export interface AsyncSettings {
  workers: Partial<Omit<AsyncWorkersOptions, 'redisUrl' | 'invoker' | 'discovery'>>;
  limits: Partial<BacklogLimits>;
}

/** Variable name -> what it sets, documented in docs/async.md. */
export const ASYNC_ENV = {
  concurrency: 'HEARTH_ASYNC_CONCURRENCY',
  retryDelaysMs: 'HEARTH_ASYNC_RETRY_DELAYS_MS',
  requeueMinMs: 'HEARTH_ASYNC_REQUEUE_MIN_MS',
  requeueMaxMs: 'HEARTH_ASYNC_REQUEUE_MAX_MS',
  lockDurationMs: 'HEARTH_ASYNC_LOCK_MS',
  stalledIntervalMs: 'HEARTH_ASYNC_STALLED_INTERVAL_MS',
  maxDepth: 'HEARTH_ASYNC_MAX_DEPTH',
  maxOldestAgeSeconds: 'HEARTH_ASYNC_MAX_OLDEST_AGE_SECONDS',
  destinationAttempts: 'HEARTH_ASYNC_DESTINATION_ATTEMPTS',
  destinationBackoffMs: 'HEARTH_ASYNC_DESTINATION_BACKOFF_MS',
  destinationTimeoutMs: 'HEARTH_ASYNC_DESTINATION_TIMEOUT_MS',
  dlqMaxLength: 'HEARTH_ASYNC_DLQ_MAX_LENGTH',
} as const;

/** Reads and checks the settings once at start; a bad value names its variable. */
export function parseAsyncSettings(env: NodeJS.ProcessEnv): AsyncSettings {
  const integer = (name: string, min: number): number | undefined => {
    const value = env[name];
    if (value === undefined || value === '') return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min)
      invalid(name, `must be an integer of at least ${min} (got "${value}")`);
    return n;
  };
  const defined = <T extends object>(object: T) =>
    Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined)) as Partial<T>;

  let retryDelaysMs: number[] | undefined;
  const delays = env[ASYNC_ENV.retryDelaysMs];
  if (delays) {
    retryDelaysMs = delays.split(',').map((d) => Number(d.trim()));
    if (retryDelaysMs.some((d) => !Number.isInteger(d) || d < 0)) {
      invalid(ASYNC_ENV.retryDelaysMs, `must be comma-separated milliseconds (got "${delays}")`);
    }
  }
  const requeueMin = integer(ASYNC_ENV.requeueMinMs, 1);
  const requeueMax = integer(ASYNC_ENV.requeueMaxMs, 1);
  const requeueBackoff =
    requeueMin !== undefined || requeueMax !== undefined
      ? { initialMs: requeueMin ?? 1000, maxMs: Math.max(requeueMax ?? 300_000, requeueMin ?? 1000) }
      : undefined;
  const delivery = defined({
    attempts: integer(ASYNC_ENV.destinationAttempts, 1),
    backoffMs: integer(ASYNC_ENV.destinationBackoffMs, 1),
    httpTimeoutMs: integer(ASYNC_ENV.destinationTimeoutMs, 1),
  });
  const limits = defined({
    maxDepth: integer(ASYNC_ENV.maxDepth, 1),
    maxOldestAgeSeconds: integer(ASYNC_ENV.maxOldestAgeSeconds, 1),
  });
  return {
    workers: defined({
      concurrency: integer(ASYNC_ENV.concurrency, 1),
      retryDelaysMs,
      requeueBackoff,
      lockDurationMs: integer(ASYNC_ENV.lockDurationMs, 500),
      stalledIntervalMs: integer(ASYNC_ENV.stalledIntervalMs, 100),
      dlqMaxLength: integer(ASYNC_ENV.dlqMaxLength, 1),
      delivery: Object.keys(delivery).length ? delivery : undefined,
      // A worker-only process has its own queue for function destinations, held to the same limits.
      backlogLimits: Object.keys(limits).length ? limits : undefined,
    }),
    limits,
  };
}

function invalid(name: string, message: string): never {
  throw new ConfigError(name, message);
}
