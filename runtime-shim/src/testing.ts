/**
 * Test helpers: function directories and real shim processes. (The shared harness in test/ depends
 * on this workspace, so the shim's own tests carry this small process helper instead.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { ShimEnv, ShimHeaders } from '@hearth/api';

export const SHIM_MAIN = fileURLToPath(new URL('./main.cjs', import.meta.url));

/**
 * A minimal Runtime API client in plain Node, used as a `provided.al2023` bootstrap: it imports
 * `handler.mjs` (its default export is `(event, context) => result`) and loops on /next. The
 * context has `requestId`, `headers` (of /next), `api` (base URL) and `reported` (set it when the
 * handler reported by itself).
 */
const TEST_RUNTIME = `
const api = 'http://' + process.env.AWS_LAMBDA_RUNTIME_API + '/2018-06-01/runtime';
let handler;
try {
  handler = (await import(process.env.LAMBDA_TASK_ROOT + '/handler.mjs')).default;
} catch (error) {
  await fetch(api + '/init/error', {
    method: 'POST',
    headers: { 'lambda-runtime-function-error-type': 'Runtime.ImportModuleError' },
    body: JSON.stringify({ errorType: 'Runtime.ImportModuleError', errorMessage: String(error && error.message) }),
  }).then((r) => r.text());
  process.exit(1);
}
for (;;) {
  const next = await fetch(api + '/invocation/next');
  const requestId = next.headers.get('lambda-runtime-aws-request-id');
  const context = { requestId, headers: Object.fromEntries(next.headers), api, reported: false };
  const event = await next.json();
  try {
    const result = await handler(event, context);
    if (!context.reported) {
      await fetch(api + '/invocation/' + requestId + '/response', { method: 'POST', body: JSON.stringify(result ?? null) }).then((r) => r.text());
    }
  } catch (error) {
    await fetch(api + '/invocation/' + requestId + '/error', {
      method: 'POST',
      headers: { 'lambda-runtime-function-error-type': error.name },
      body: JSON.stringify({ errorType: error.name, errorMessage: error.message }),
    }).then((r) => r.text());
  }
}
`;

/** Writes a function's files into a fresh temp dir; `bootstrap` becomes executable. */
export async function writeFunction(files: Record<string, string>, parent = tmpdir()): Promise<string> {
  const dir = await mkdtemp(join(parent, 'hearth-fn-'));
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
    if (name === 'bootstrap') await chmod(path, 0o755);
  }
  return dir;
}

/** A `provided.al2023` function whose handler module is `handlerSource` (see TEST_RUNTIME). */
export function nodeHandlerFunction(handlerSource: string): Promise<string> {
  return writeFunction({
    bootstrap: '#!/bin/sh\nexec node "$LAMBDA_TASK_ROOT/runtime.mjs"\n',
    'runtime.mjs': TEST_RUNTIME,
    'handler.mjs': handlerSource,
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

export interface InvokeOptions {
  requestId?: string;
  deadlineMs?: number;
  logTail?: boolean;
  clientContext?: unknown;
  traceId?: string;
}

export interface InvokeAnswer {
  status: number;
  headers: Headers;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read whatever JSON a handler returned
  json(): any;
  /** The x-hearth-error-type header, when the function failed. */
  errorType: string | null;
  initDurationMs: number | undefined;
  /** The decoded log tail, when asked for. */
  logTail: string | undefined;
}

export interface RunningShim {
  readonly url: string;
  readonly child: ChildProcess;
  /** The function log stream so far (the shim's stdout). */
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  invoke(event: unknown, options?: InvokeOptions): Promise<InvokeAnswer>;
  waitForStdout(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** The shim's own log is written asynchronously: a line may follow its readiness. */
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** SIGTERM, then SIGKILL to the group after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const running = new Set<RunningShim>();
process.once('exit', () => {
  for (const shim of running) {
    try {
      process.kill(-shim.child.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

export interface ShimSettings {
  codeDir: string;
  runtime?: string;
  handler?: string;
  memoryMb?: number;
  timeoutSeconds?: number;
  concurrency?: number;
  /** Further environment: HEARTH_* settings or the function's own variables. */
  env?: Record<string, string>;
  /** Wait for /readyz (default true). */
  waitReady?: boolean;
  /** The shim's main module (default: this build's). */
  entry?: string;
}

/**
 * This process's environment without Node's own settings (NODE_OPTIONS, NODE_EXTRA_CA_CERTS...):
 * the shim hands its environment to the runtimes as the function's variables, and a test's
 * runtimes must not start differently on a machine that sets them.
 */
function inheritedEnvironment(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      (entry): entry is [string, string] =>
        entry[1] !== undefined && (!entry[0].startsWith('NODE_') || entry[0] === 'NODE_PATH'),
    ),
  );
}

/** Starts `hearth-shim` as a real process on a free port and waits until it is ready. */
export async function startShim(settings: ShimSettings): Promise<RunningShim> {
  const port = await freePort();
  const env: Record<string, string> = {
    ...inheritedEnvironment(),
    [ShimEnv.functionName]: 'test-fn',
    [ShimEnv.runtime]: settings.runtime ?? 'provided.al2023',
    [ShimEnv.handler]: settings.handler ?? 'handler.default',
    [ShimEnv.codeDir]: settings.codeDir,
    [ShimEnv.memoryMb]: String(settings.memoryMb ?? 128),
    [ShimEnv.timeoutSeconds]: String(settings.timeoutSeconds ?? 3),
    [ShimEnv.concurrency]: String(settings.concurrency ?? 1),
    [ShimEnv.host]: '127.0.0.1',
    [ShimEnv.port]: String(port),
    ...settings.env,
  };
  const child = spawn(process.execPath, [settings.entry ?? SHIM_MAIN], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const out: string[] = [];
  const err: string[] = [];
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => out.push(chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    err.push(chunk);
    if (process.env.HEARTH_TEST_LOGS === '1') process.stderr.write(chunk);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      running.delete(shim);
      resolve({ code, signal });
    }),
  );
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  const url = `http://127.0.0.1:${port}`;
  const shim: RunningShim = {
    url,
    child,
    exited,
    stdout: () => out.join(''),
    stderr: () => err.join(''),
    invoke: (event, options) => invoke(url, event, options),
    waitForStdout: (pattern, timeoutMs) => waitForOutput('stdout', out, pattern, timeoutMs),
    waitForStderr: (pattern, timeoutMs) => waitForOutput('stderr', err, pattern, timeoutMs),
    async stop(graceMs = 5000) {
      if (hasExited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // gone
        }
      }, graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  running.add(shim);
  if (settings.waitReady === false) return shim;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (hasExited) throw new Error(`shim exited before it was ready:\n${shim.stderr()}`);
    const status = await fetch(`${url}/readyz`).then(
      (response) => response.status,
      () => 0,
    );
    if (status === 200) return shim;
    if (Date.now() > deadline) {
      await shim.stop(0);
      throw new Error(`shim was not ready within 15 s:\n${shim.stderr()}`);
    }
    await sleep(20);
  }
}

async function waitForOutput(stream: string, chunks: string[], pattern: RegExp, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(chunks.join(''))) {
    if (Date.now() > deadline)
      throw new Error(`shim ${stream} never matched ${pattern}:\n${chunks.join('')}`);
    await sleep(10);
  }
}

/** `POST /invoke` on a shim. */
export async function invoke(
  url: string,
  event: unknown,
  options: InvokeOptions = {},
): Promise<InvokeAnswer> {
  const headers: Record<string, string> = {};
  if (options.requestId) headers[ShimHeaders.requestId] = options.requestId;
  if (options.deadlineMs) headers[ShimHeaders.deadlineMs] = String(options.deadlineMs);
  if (options.logTail) headers[ShimHeaders.logType] = 'Tail';
  if (options.traceId) headers[ShimHeaders.traceId] = options.traceId;
  if (options.clientContext !== undefined) {
    headers[ShimHeaders.clientContext] = Buffer.from(JSON.stringify(options.clientContext)).toString(
      'base64',
    );
  }
  const response = await fetch(`${url}/invoke`, {
    method: 'POST',
    headers,
    body: typeof event === 'string' ? event : JSON.stringify(event),
  });
  const text = await response.text();
  const init = response.headers.get(ShimHeaders.initDurationMs);
  const tail = response.headers.get(ShimHeaders.logResult);
  return {
    status: response.status,
    headers: response.headers,
    text,
    json: () => JSON.parse(text),
    errorType: response.headers.get(ShimHeaders.errorType),
    initDurationMs: init === null ? undefined : Number(init),
    logTail: tail === null ? undefined : Buffer.from(tail, 'base64').toString('utf8'),
  };
}

/** Removes a function dir made by writeFunction. */
export function removeFunction(dir: string): Promise<void> {
  return rm(dir, { recursive: true, force: true });
}

/** True while a process with this pid exists and has not exited. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie has exited and runs nothing: it only waits for its parent (the shim) to reap it,
  // which a busy machine can put off for longer than a test's margin.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}
