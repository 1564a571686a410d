import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** A program `hearth dev` started and must stop. */
export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  readonly exited: Promise<number | null>;
  stop(graceMs?: number): Promise<void>;
}

const levelNames: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};

/**
 * One line of a child's output for a person: pino's JSON becomes `level message key=value`,
 * anything else (function logs) is shown as it is.
 */
export function humanLine(line: string): string {
  // Instances' lines arrive through the controller already prefixed with `[function] `.
  const prefix = /^(\[[^\]]*\] )*/.exec(line)![0];
  const body = line.slice(prefix.length);
  if (!body.startsWith('{')) return line;
  try {
    const record = JSON.parse(body) as Record<string, unknown>;
    const { level, msg, time: _time, pid: _pid, hostname: _hostname, name: _name, ...rest } = record;
    const fields = Object.entries(rest)
      .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
      .join(' ');
    const levelName = typeof level === 'number' ? (levelNames[level] ?? String(level)) : String(level ?? '');
    return `${prefix}${levelName === 'info' ? '' : `${levelName.toUpperCase()} `}${String(msg ?? '')}${fields ? ` ${fields}` : ''}`;
  } catch {
    return line;
  }
}

/** Starts a program in its own process group, its output prefixed with its name. */
export function startChild(
  name: string,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  write: (line: string) => void,
): Child {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (line) => write(`[${name}] ${humanLine(line)}`));
  }
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null)));
    child.once('error', (error) => {
      write(`[${name}] could not start ${command}: ${error.message}`);
      resolve(127);
    });
  });
  let done = false;
  void exited.then(() => (done = true));
  return {
    name,
    process: child,
    exited,
    async stop(graceMs = 10_000) {
      if (done || child.pid === undefined) return;
      const kill = (signal: NodeJS.Signals) => {
        try {
          process.kill(-child.pid!, signal);
        } catch {
          // already gone
        }
      };
      kill('SIGTERM');
      const timer = setTimeout(() => kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
