import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A server under benchmark: a process in its own group whose stdout and stderr go to a file,
 * as a container runtime would keep them. Logs through a pipe would make the benchmark process
 * itself busy reading them, on the same few CPUs the servers need.
 */
export interface ServerProcess {
  readonly name: string;
  /** True once the process has exited. */
  hasExited(): boolean;
  logs(): string;
  /** SIGTERM to the group, SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export interface ServerOptions {
  name: string;
  command: string;
  args?: string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
  logDir: string;
}

const running = new Set<number>();
process.once('exit', () => {
  for (const pid of running) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

let started = 0;

export function spawnServer(options: ServerOptions): ServerProcess {
  const logFile = join(options.logDir, `${options.name}-${started++}.log`);
  const fd = openSync(logFile, 'w');
  const child = spawn(options.command, options.args ?? [], {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', fd, fd],
    detached: true,
  });
  closeSync(fd);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${options.name}: could not start ${options.command}`);
  running.add(pid);
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      running.delete(pid);
      resolve();
    }),
  );
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-pid, signal);
    } catch {
      // the group is gone
    }
  };
  return {
    name: options.name,
    hasExited: () => exited,
    logs: () => readFileSync(logFile, 'utf8'),
    async stop(graceMs = 2000) {
      if (!exited) {
        killGroup('SIGTERM');
        const timer = setTimeout(() => killGroup('SIGKILL'), graceMs);
        await exit;
        clearTimeout(timer);
      }
      // Whatever the server left in its group (a runtime process) goes too.
      killGroup('SIGKILL');
    },
  };
}
