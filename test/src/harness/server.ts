import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startProcess, type RunningProcess, type StartOptions } from './process.js';

/** A server started from a local binary on a free loopback port, its data in a temp dir. */
export interface LocalServer {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  readonly process: RunningProcess;
  /** Stops the server and starts it again on the same port and data. */
  restart(signal?: NodeJS.Signals): Promise<void>;
  /** Kills the server and removes its data. */
  stop(): Promise<void>;
}

export interface LocalServerOptions {
  /** The binary's name, also the apt package to install; `envVar` overrides it. */
  binary: string;
  envVar: string;
  /** URL scheme of `url`, such as "redis". */
  scheme: string;
  /** How `restart` stops the server by default, and how long it may take before SIGKILL. */
  restartSignal: NodeJS.Signals;
  restartGraceMs: number;
  /** How to run it, given its temp dir and its port. */
  command: (dir: string, port: number) => Promise<Omit<StartOptions, 'name' | 'command'>>;
}

/** Starts `options.binary` (which must be installed) and hands back its handle. */
export async function startLocalServer(options: LocalServerOptions): Promise<LocalServer> {
  const binary = process.env[options.envVar] ?? options.binary;
  try {
    execFileSync(binary, ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(
      `${binary} is not installed: run "apt-get install ${options.binary}" (or set ${options.envVar})`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), `hearth-${options.scheme}-`));
  try {
    const port = await freePort();
    const rest = await options.command(dir, port);
    const start = () => startProcess({ ...rest, name: `${options.scheme}:${port}`, command: binary });
    let current = await start();
    return {
      port,
      url: `${options.scheme}://127.0.0.1:${port}`,
      dir,
      get process() {
        return current;
      },
      async restart(signal = options.restartSignal) {
        await current.stop(signal, options.restartGraceMs);
        current = await start();
      },
      async stop() {
        await current.stop('SIGKILL');
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
