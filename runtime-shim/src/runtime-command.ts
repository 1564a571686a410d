import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ShimConfig } from './config.js';
import { NODE_HEAP_LIMIT_FLAG } from './runtimes/launch-protocol.js';

/** The shim's own dist/ directory: the language bootstraps are found relative to it. */
const DIST_DIR = fileURLToPath(new URL('.', import.meta.url));
/** runtime-shim/: the Python bootstrap is shipped as source, outside dist/. */
const PACKAGE_DIR = join(DIST_DIR, '..');

export interface RuntimeCommand {
  command: string;
  args: string[];
  /** LAMBDA_RUNTIME_DIR: where the runtime's own files are. */
  runtimeDir: string;
  /**
   * The bootstrap is Hearth's own and waits for its private /tmp before it loads the function's
   * code (runtimes/launch-protocol.ts), so the launcher may start it before /tmp is in place.
   */
  waitsForTmp?: boolean;
}

/**
 * Whether Node reads a setting of the function's before the bootstrap's first line: NODE_OPTIONS
 * can --require the function's own code, which must not run before its /tmp is in place.
 * NODE_PATH only steers where modules are found.
 */
function nodeStartsWithFunctionSettings(functionEnv: Record<string, string>): boolean {
  return Object.keys(functionEnv).some((name) => name.startsWith('NODE_') && name !== 'NODE_PATH');
}

/**
 * Node's old-space limit in MB for a given function memory: Lambda's Node runtime keeps about a
 * tenth for everything else (code, buffers, the runtime itself).
 */
export function nodeHeapLimitMb(memoryMb: number): number {
  return Math.floor(memoryMb * 0.9);
}

/** The command that starts the language runtime for `config.runtime`. */
export function runtimeCommand(
  config: Pick<ShimConfig, 'runtime' | 'codeDir' | 'memoryMb' | 'runtimeArgv' | 'functionEnv'>,
): RuntimeCommand {
  switch (config.runtime) {
    case 'nodejs20.x':
    case 'nodejs22.x': {
      const runtimeDir = join(DIST_DIR, 'runtimes', 'nodejs');
      return {
        command: process.execPath,
        // bootstrap.ts and its modules in one CommonJS file (build.mjs): the fastest for Node to start.
        args: [
          `${NODE_HEAP_LIMIT_FLAG}=${nodeHeapLimitMb(config.memoryMb)}`,
          join(runtimeDir, 'bootstrap.cjs'),
        ],
        runtimeDir,
        waitsForTmp: !nodeStartsWithFunctionSettings(config.functionEnv),
      };
    }
    case 'python3.11': {
      const runtimeDir = join(PACKAGE_DIR, 'runtimes', 'python3');
      return { command: 'python3', args: [join(runtimeDir, 'bootstrap.py')], runtimeDir };
    }
    case 'provided.al2023': {
      const [command, ...args] = config.runtimeArgv ?? [join(config.codeDir, 'bootstrap')];
      return { command: command!, args, runtimeDir: config.codeDir };
    }
  }
}

/**
 * Lambda's log stream name: `YYYY/MM/DD/[$LATEST]<32 hex>`, one per execution environment. The
 * hex digits name the environment and guard no secret: Math.random draws them, so that the
 * runtime's spawn does not wait for node:crypto to load (deferred-builtins.ts).
 */
export function logStreamName(version: string, now = new Date()): string {
  const day = now.toISOString().slice(0, 10).replaceAll('-', '/');
  let hex = '';
  while (hex.length < 32)
    hex += Math.floor(Math.random() * 2 ** 32)
      .toString(16)
      .padStart(8, '0');
  return `${day}/[${version}]${hex}`;
}

/**
 * The runtime's environment: the function's own variables, then Lambda's reserved ones on top
 * (a function cannot override them, as on Lambda).
 */
export function runtimeEnvironment(
  config: ShimConfig,
  runtime: { runtimeApi: string; runtimeDir: string; logStream: string; tmpDir?: string },
): Record<string, string> {
  const env: Record<string, string> = {
    ...config.functionEnv,
    _HANDLER: config.handler,
    AWS_LAMBDA_RUNTIME_API: runtime.runtimeApi,
    LAMBDA_TASK_ROOT: config.codeDir,
    LAMBDA_RUNTIME_DIR: runtime.runtimeDir,
    AWS_LAMBDA_FUNCTION_NAME: config.functionName,
    AWS_LAMBDA_FUNCTION_VERSION: config.functionVersion,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(config.memoryMb),
    AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${config.functionName}`,
    AWS_LAMBDA_LOG_STREAM_NAME: runtime.logStream,
    AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
    AWS_REGION: config.region,
    AWS_DEFAULT_REGION: config.region,
    TZ: 'UTC',
    LANG: 'en_US.UTF-8',
    PATH: config.functionEnv.PATH || '/usr/local/bin:/usr/bin:/bin',
    NODE_PATH: [join(config.codeDir, 'node_modules'), config.codeDir].join(':'),
  };
  // Lambda sets no execution env for OS-only runtimes; their bootstrap is the user's own.
  if (config.runtime === 'provided.al2023') delete env.AWS_EXECUTION_ENV;
  else env.AWS_EXECUTION_ENV = `AWS_Lambda_${config.runtime}`;
  if (runtime.tmpDir) {
    env.TMPDIR = runtime.tmpDir;
    env.TEMP = runtime.tmpDir;
    env.TMP = runtime.tmpDir;
  }
  return env;
}
