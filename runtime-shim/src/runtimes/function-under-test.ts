/**
 * Test support for the language runtimes: a function's files behind the real shim, invoked over
 * the shim's `POST /invoke` as the gateway does. Builds on the shim's own test helpers.
 */
import { ShimHeaders, shimEnvName, type Runtime } from '@hearth/api';
import { invoke, removeFunction, startShim, writeFunction, type RunningShim } from '../testing.js';

export interface FunctionOptions {
  runtime: Runtime;
  handler: string;
  /** File name (may contain `/`) to content. */
  files: Record<string, string>;
  /** The function's own environment variables. */
  env?: Record<string, string>;
  memoryMb?: number;
  timeoutSeconds?: number;
  /** Where the code directory is made (default: the system's temp dir). */
  codeParent?: string;
}

export interface InvokeOptions {
  requestId?: string;
  /** JSON, sent base64-encoded as in X-Amz-Client-Context. */
  clientContext?: unknown;
  traceId?: string;
  /** Ask for the invocation's log tail. */
  tail?: boolean;
}

export interface InvokeResult {
  status: number;
  body: string;
  /** The body parsed as JSON. */
  json: unknown;
  /** `Unhandled` when the function failed. */
  functionError: string | null;
  /** The decoded log tail, when asked for. */
  logTail: string;
}

export interface FunctionUnderTest {
  readonly name: string;
  invoke(event: unknown, options?: InvokeOptions): Promise<InvokeResult>;
  /** The function's log stream so far. */
  logs(): string;
  /** Resolves once the log stream has a line matching `pattern` (it is written just after the answer). */
  waitForLogs(pattern: RegExp): Promise<void>;
  stop(): Promise<void>;
}

const FUNCTION_NAME = 'runtime-test-fn';

/** `env` as the controller gives it to a shim: settings as they are, the function's NODE_* renamed. */
function shimEnvironment(env: Record<string, string> = {}): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).map(([name, value]) => [
      name.startsWith('HEARTH_') ? name : shimEnvName(name),
      value,
    ]),
  );
}

export async function startFunction(options: FunctionOptions): Promise<FunctionUnderTest> {
  const codeDir = await writeFunction(options.files, options.codeParent);
  let shim: RunningShim;
  try {
    shim = await startShim({
      codeDir,
      runtime: options.runtime,
      handler: options.handler,
      memoryMb: options.memoryMb ?? 256,
      timeoutSeconds: options.timeoutSeconds ?? 10,
      env: {
        HEARTH_FUNCTION_NAME: FUNCTION_NAME,
        HEARTH_ISOLATION: 'portable',
        ...shimEnvironment(options.env),
      },
    });
  } catch (error) {
    await removeFunction(codeDir);
    throw error;
  }
  return {
    name: FUNCTION_NAME,
    async invoke(event, invokeOptions = {}) {
      const answer = await invoke(shim.url, event, { ...invokeOptions, logTail: invokeOptions.tail });
      let json: unknown;
      try {
        json = JSON.parse(answer.text);
      } catch {
        json = undefined;
      }
      return {
        status: answer.status,
        body: answer.text,
        json,
        functionError: answer.headers.get(ShimHeaders.functionError),
        logTail: answer.logTail ?? '',
      };
    },
    logs: () => shim.stdout(),
    waitForLogs: (pattern) => shim.waitForStdout(pattern),
    async stop() {
      await shim.stop();
      await removeFunction(codeDir);
    },
  };
}
