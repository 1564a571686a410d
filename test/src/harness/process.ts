import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** How to tell that a started process can serve. */
export type Readiness =
  { url: string; status?: number } | { line: RegExp } | { check: () => Promise<boolean> };

export interface StartOptions {
  /** A short name for logs and errors. */
  name: string;
  command: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  ready?: Readiness;
  readyTimeoutMs?: number;
}

export interface RunningProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  logs(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Waits for a log line matching `pattern` (already written or still to come). */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends `signal` to the whole process group, then SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

const running = new Set<RunningProcess>();

// A test file that fails or is interrupted still leaves no process behind.
function killAllSync() {
  for (const p of running) {
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  running.clear();
}
process.once('exit', killAllSync);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAllSync();
    process.exit(130);
  });
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Starts a real process in its own process group and waits until it is ready. */
export async function startProcess(options: StartOptions): Promise<RunningProcess> {
  const child = spawn(options.command, options.args ?? [], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  if (child.pid === undefined) {
    const error = await new Promise<Error>((resolve) => child.once('error', resolve));
    throw new Error(`${options.name}: could not start ${options.command}: ${error.message}`);
  }
  const pid = child.pid;
  const chunks: string[] = [];
  const watchers = new Set<() => void>();
  const echo = process.env.HEARTH_TEST_LOGS === '1';
  const collect = (data: Buffer) => {
    const text = data.toString();
    chunks.push(text);
    if (echo) process.stderr.write(text.replace(/^/gm, `[${options.name}] `));
    for (const watcher of watchers) watcher();
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      running.delete(handle);
      for (const watcher of watchers) watcher();
      resolve({ code, signal });
    }),
  );
  let hasExited = false;
  void exited.then(() => (hasExited = true));

  const logs = () => chunks.join('');
  const handle: RunningProcess = {
    name: options.name,
    pid,
    child,
    logs,
    exited,
    waitForLog(pattern, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = logs().match(pattern);
          if (match) {
            done();
            resolve(match[0]);
          } else if (hasExited) {
            done();
            reject(new Error(`${options.name} exited before logging ${pattern}:\n${logs()}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${options.name} did not log ${pattern} within ${timeoutMs} ms:\n${logs()}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          watchers.delete(check);
        };
        watchers.add(check);
        check();
      });
    },
    async stop(signal = 'SIGTERM', graceMs = 5000) {
      if (hasExited) return;
      try {
        process.kill(-pid, signal);
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }, graceMs);
      await exited;
      clearTimeout(timer);
      // Children the process left in its group go too.
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // none left
      }
    },
  };
  running.add(handle);

  if (options.ready) {
    try {
      await waitReady(handle, options.ready, options.readyTimeoutMs ?? 15_000, () => hasExited);
    } catch (error) {
      await handle.stop('SIGKILL');
      throw error;
    }
  }
  return handle;
}

async function waitReady(
  handle: RunningProcess,
  ready: Readiness,
  timeoutMs: number,
  hasExited: () => boolean,
): Promise<void> {
  if ('line' in ready) {
    await handle.waitForLog(ready.line, timeoutMs);
    return;
  }
  const check =
    'url' in ready
      ? async () => {
          try {
            const response = await fetch(ready.url, { signal: AbortSignal.timeout(1000) });
            await response.arrayBuffer();
            return response.status === (ready.status ?? 200);
          } catch {
            return false;
          }
        }
      : ready.check;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (hasExited()) throw new Error(`${handle.name} exited before it was ready:\n${handle.logs()}`);
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`${handle.name} was not ready within ${timeoutMs} ms:\n${handle.logs()}`);
}

/** True while a process with this pid exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
