import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { freePort, startProcess, type RunningProcess } from './process.js';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  readonly process: RunningProcess;
  /** Kills Redis (SIGKILL by default, as a crash would) and starts it again on the same port and data. */
  restart(signal?: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
}

export interface RedisOptions {
  /** Append-only file with fsync on every write, so a restart keeps every acknowledged write. */
  appendOnly?: boolean;
}

/** Starts a real redis-server on a free loopback port with its data in a temp dir. */
export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const binary = process.env.REDIS_SERVER ?? 'redis-server';
  try {
    execFileSync(binary, ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(`${binary} is not installed: run "apt-get install redis-server" (or set REDIS_SERVER)`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'hearth-redis-'));
  const port = await freePort();
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--maxmemory-policy',
    'noeviction',
    '--appendonly',
    options.appendOnly ? 'yes' : 'no',
    '--appendfsync',
    'always',
  ];
  const start = () =>
    startProcess({
      name: `redis:${port}`,
      command: binary,
      args,
      ready: { line: /Ready to accept connections/ },
    });
  let current = await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    get process() {
      return current;
    },
    async restart(signal = 'SIGKILL') {
      await current.stop(signal, 2000);
      current = await start();
    },
    async stop() {
      await current.stop('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
