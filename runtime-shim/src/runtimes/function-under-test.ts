/**
 * Test support: writes a function's files to a temp dir, runs it behind the real shim
 * (`dist/main.js`), and invokes it over the shim's `POST /invoke` as the gateway does.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ShimEnv, ShimHeaders, ShimPaths, type Runtime } from '@hearth/api';

/** The parts of the test harness (`@hearth/test/harness/process`) used here. */
interface RunningProcess {
  logs(): string;
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}
interface ProcessHarness {
  freePort(): Promise<number>;
  startProcess(options: {
    name: string;
    command: string;
    args?: string[];
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    ready?: { url: string; status?: number };
    readyTimeoutMs?: number;
  }): Promise<RunningProcess>;
}

// The harness lives in the `test` workspace, which itself builds on this one: a static import
// would make the TypeScript project references circular, so it is loaded when a test runs.
const harnessModule = '@hearth/test/harness/process';
const harness = (await import(harnessModule)) as ProcessHarness;

const shimMain = fileURLToPath(new URL('../main.js', import.meta.url));

export interface FunctionOptions {
  runtime: Runtime;
  handler: string;
  /** File name (may contain `/`) to content. */
  files: Record<string, string>;
  /** The function's own environment variables. */
  env?: Record<string, string>;
  memoryMb?: number;
  timeoutSeconds?: number;
}

export interface InvokeOptions {
  requestId?: string;
  /** Base64 JSON, as in X-Amz-Client-Context. */
  clientContext?: string;
  traceId?: string;
  invokedFunctionArn?: string;
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
  logs(): string;
  stop(): Promise<void>;
}

let invocationCounter = 0;

export async function startFunction(options: FunctionOptions): Promise<FunctionUnderTest> {
  const codeDir = await mkdtemp(join(tmpdir(), 'hearth-runtime-test-'));
  for (const [file, content] of Object.entries(options.files)) {
    await mkdir(dirname(join(codeDir, file)), { recursive: true });
    await writeFile(join(codeDir, file), content);
  }
  const port = await harness.freePort();
  const name = `fn-${options.runtime.replace(/\W/g, '')}-${port}`;
  let shim: RunningProcess;
  try {
    shim = await harness.startProcess({
      name,
      command: process.execPath,
      args: [shimMain],
      cwd: codeDir,
      // Only what a function needs: the test runner's own variables must not leak into it.
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        [ShimEnv.functionName]: name,
        [ShimEnv.runtime]: options.runtime,
        [ShimEnv.handler]: options.handler,
        [ShimEnv.codeDir]: codeDir,
        [ShimEnv.host]: '127.0.0.1',
        [ShimEnv.port]: String(port),
        [ShimEnv.memoryMb]: String(options.memoryMb ?? 256),
        [ShimEnv.timeoutSeconds]: String(options.timeoutSeconds ?? 10),
        [ShimEnv.isolation]: 'portable',
        ...options.env,
      },
      ready: { url: `http://127.0.0.1:${port}${ShimPaths.healthz}` },
    });
  } catch (error) {
    await rm(codeDir, { recursive: true, force: true });
    throw error;
  }

  return {
    name,
    async invoke(event, invokeOptions = {}) {
      const headers: Record<string, string> = {
        [ShimHeaders.requestId]: invokeOptions.requestId ?? `test-${process.pid}-${++invocationCounter}`,
      };
      if (invokeOptions.clientContext) headers[ShimHeaders.clientContext] = invokeOptions.clientContext;
      if (invokeOptions.traceId) headers[ShimHeaders.traceId] = invokeOptions.traceId;
      if (invokeOptions.invokedFunctionArn)
        headers[ShimHeaders.invokedFunctionArn] = invokeOptions.invokedFunctionArn;
      if (invokeOptions.tail) headers[ShimHeaders.logType] = 'Tail';
      const response = await fetch(`http://127.0.0.1:${port}${ShimPaths.invoke}`, {
        method: 'POST',
        headers,
        body: JSON.stringify(event),
        signal: AbortSignal.timeout(20_000),
      });
      const body = await response.text();
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      const logResult = response.headers.get(ShimHeaders.logResult);
      return {
        status: response.status,
        body,
        json,
        functionError: response.headers.get(ShimHeaders.functionError),
        logTail: logResult ? Buffer.from(logResult, 'base64').toString('utf8') : '',
      };
    },
    logs: () => shim.logs(),
    async stop() {
      await shim.stop();
      await rm(codeDir, { recursive: true, force: true });
    },
  };
}
