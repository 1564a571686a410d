import { isAbsolute, resolve } from 'node:path';
import { Limits, MultiConcurrentRuntimes, Runtimes, type Runtime } from '@hearth/api/lambda';
import {
  FUNCTION_ENV_PREFIX,
  MAX_RUNTIMES_PER_INSTANCE,
  runtimesPerInstance,
  ShimEnv,
} from '@hearth/api/shim-protocol';

export type IsolationWish = 'auto' | 'portable';

/** The shim's settings, read once from its environment. */
export interface ShimConfig {
  functionName: string;
  functionVersion: string;
  revision: string;
  runtime: Runtime;
  handler: string;
  codeDir: string;
  memoryMb: number;
  timeoutSeconds: number;
  ephemeralStorageMb: number;
  host: string;
  port: number;
  region: string;
  concurrency: number;
  /** Calls one runtime process takes at once (AWS_LAMBDA_MAX_CONCURRENCY when above 1). */
  perRuntime: number;
  /** Undefined: a fresh temp dir, removed on exit. */
  stateDir: string | undefined;
  logLevel: string;
  isolation: IsolationWish;
  /**
   * The instance's own /tmp (HEARTH_TMP_DIR): watched and wiped in place of a per-runtime TMPDIR
   * when /tmp is confined by directory. Undefined: the shim makes its own TMPDIR per runtime.
   */
  tmpDir: string | undefined;
  initTimeoutMs: number;
  /** Stop when stdin closes (HEARTH_STOP_WITH_STDIN=1): the starting process holds the other end. */
  stopWithStdin: boolean;
  /** A provided runtime's own command (HEARTH_RUNTIME_COMMAND); undefined: `<codeDir>/bootstrap`. */
  runtimeArgv: string[] | undefined;
  /** The function's own environment: everything not starting with `HEARTH_`. */
  functionEnv: Record<string, string>;
}

/** As the Function resource allows for `concurrency.perInstance` and `perRuntime`. */
const MAX_CONCURRENCY = 1000;

/**
 * How many calls each runtime process takes at once (pure): `concurrency` calls in runtimes of
 * `perRuntime` each, the last one taking what is left.
 */
export function runtimeCapacities(config: Pick<ShimConfig, 'concurrency' | 'perRuntime'>): number[] {
  const capacities: number[] = [];
  for (let left = config.concurrency; left > 0; left -= config.perRuntime) {
    capacities.push(Math.min(left, config.perRuntime));
  }
  return capacities;
}
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** A setting the shim cannot start with; the message names the variable and what it accepts. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

function required(env: NodeJS.ProcessEnv, variable: string): string {
  const value = env[variable];
  if (value === undefined || value === '') throw new ConfigError(variable, 'is required');
  return value;
}

function integer(
  env: NodeJS.ProcessEnv,
  variable: string,
  range: { min: number; max: number; default: number },
) {
  const raw = env[variable];
  if (raw === undefined || raw === '') return range.default;
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < range.min || value > range.max) {
    throw new ConfigError(variable, `must be an integer from ${range.min} to ${range.max}, got "${raw}"`);
  }
  return value;
}

function oneOf<T extends string>(
  env: NodeJS.ProcessEnv,
  variable: string,
  allowed: readonly T[],
  fallback?: T,
): T {
  const raw = env[variable];
  if ((raw === undefined || raw === '') && fallback !== undefined) return fallback;
  if (raw === undefined || raw === '')
    throw new ConfigError(variable, `is required (one of ${allowed.join(', ')})`);
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ConfigError(variable, `must be one of ${allowed.join(', ')}, got "${raw}"`);
  }
  return raw as T;
}

/** A JSON array of non-empty strings, e.g. `["/lambda-entrypoint.sh","app.handler"]`. */
function argvSetting(env: NodeJS.ProcessEnv, variable: string): string[] | undefined {
  const raw = env[variable];
  if (raw === undefined || raw === '') return undefined;
  let argv: unknown;
  try {
    argv = JSON.parse(raw);
  } catch {
    argv = undefined;
  }
  if (
    !Array.isArray(argv) ||
    argv.length === 0 ||
    !argv.every((a) => typeof a === 'string') ||
    argv[0] === ''
  ) {
    throw new ConfigError(variable, `must be a JSON array of strings, the first one the program, got ${raw}`);
  }
  return argv as string[];
}

/** Reads and validates the shim's settings; throws a ConfigError naming the first bad variable. */
export function parseConfig(env: NodeJS.ProcessEnv): ShimConfig {
  const runtime = oneOf(env, ShimEnv.runtime, Runtimes);
  const codeDir = required(env, ShimEnv.codeDir);
  if (!isAbsolute(codeDir))
    throw new ConfigError(ShimEnv.codeDir, `must be an absolute path, got "${codeDir}"`);
  // A provided runtime's bootstrap reads _HANDLER as it likes; Lambda still requires one.
  const handler =
    runtime === 'provided.al2023' ? (env[ShimEnv.handler] ?? 'handler') : required(env, ShimEnv.handler);
  const stateDir = env[ShimEnv.stateDir];
  if (stateDir !== undefined && stateDir !== '' && !isAbsolute(stateDir)) {
    throw new ConfigError(ShimEnv.stateDir, `must be an absolute path, got "${stateDir}"`);
  }
  const tmpDir = env[ShimEnv.tmpDir];
  // Its contents are wiped at start and on overflow: never the root directory.
  if (tmpDir !== undefined && tmpDir !== '' && (!isAbsolute(tmpDir) || resolve(tmpDir) === '/')) {
    throw new ConfigError(ShimEnv.tmpDir, `must be an absolute path other than /, got "${tmpDir}"`);
  }
  const concurrency = integer(env, ShimEnv.concurrency, { min: 1, max: MAX_CONCURRENCY, default: 1 });
  const perRuntime = integer(env, ShimEnv.perRuntime, { min: 1, max: MAX_CONCURRENCY, default: 1 });
  if (perRuntime > 1 && !MultiConcurrentRuntimes.includes(runtime)) {
    // As on Lambda Managed Instances, where Python runs a process per concurrent call.
    throw new ConfigError(
      ShimEnv.perRuntime,
      `must be 1 for ${runtime}, whose runtime takes one call at a time: raise ${ShimEnv.concurrency} instead (got ${perRuntime})`,
    );
  }
  const runtimes = runtimesPerInstance({ perInstance: concurrency, perRuntime });
  if (runtimes > MAX_RUNTIMES_PER_INSTANCE) {
    throw new ConfigError(
      ShimEnv.concurrency,
      `needs ${runtimes} runtime processes at ${perRuntime} call(s) each (${ShimEnv.perRuntime}), at most ${MAX_RUNTIMES_PER_INSTANCE} (got ${concurrency})`,
    );
  }
  const runtimeArgv = argvSetting(env, ShimEnv.runtimeCommand);
  if (runtimeArgv && runtime !== 'provided.al2023') {
    throw new ConfigError(
      ShimEnv.runtimeCommand,
      `is only for ${ShimEnv.runtime}=provided.al2023, got ${runtime}`,
    );
  }
  // The function's variables: the shim's own environment but its settings, with the variables
  // Node would read as it starts given renamed (FUNCTION_ENV_PREFIX), under their own names.
  const functionEnv: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (!key.startsWith('HEARTH_') && value !== undefined) functionEnv[key] = value;
  }
  for (const [key, value] of Object.entries(env)) {
    if (key.startsWith(FUNCTION_ENV_PREFIX) && key.length > FUNCTION_ENV_PREFIX.length && value !== undefined)
      functionEnv[key.slice(FUNCTION_ENV_PREFIX.length)] = value;
  }
  return {
    functionName: required(env, ShimEnv.functionName),
    functionVersion: env[ShimEnv.functionVersion] || '$LATEST',
    revision: env[ShimEnv.revision] ?? '',
    runtime,
    handler,
    codeDir: resolve(codeDir),
    memoryMb: integer(env, ShimEnv.memoryMb, Limits.memoryMb),
    timeoutSeconds: integer(env, ShimEnv.timeoutSeconds, Limits.timeoutSeconds),
    ephemeralStorageMb: integer(env, ShimEnv.ephemeralStorageMb, Limits.ephemeralStorageMb),
    host: env[ShimEnv.host] || '0.0.0.0',
    port: integer(env, ShimEnv.port, { min: 0, max: 65_535, default: 8080 }),
    region: env[ShimEnv.region] || 'us-east-1',
    concurrency,
    perRuntime,
    stateDir: stateDir ? resolve(stateDir) : undefined,
    logLevel: oneOf(env, ShimEnv.logLevel, LOG_LEVELS, 'info'),
    isolation: oneOf<IsolationWish>(env, ShimEnv.isolation, ['auto', 'portable'], 'auto'),
    tmpDir: tmpDir ? resolve(tmpDir) : undefined,
    runtimeArgv,
    stopWithStdin: oneOf(env, ShimEnv.stopWithStdin, ['0', '1'], '0') === '1',
    initTimeoutMs: integer(env, ShimEnv.initTimeoutMs, {
      min: 100,
      max: Limits.initTimeoutMs,
      default: Limits.initTimeoutMs,
    }),
    functionEnv,
  };
}
