import { after, before } from 'node:test';
import { Redis } from 'ioredis';
import { startLocalServer, type LocalServer } from './server.js';

export interface RedisServer extends LocalServer {
  /** Kills Redis (SIGKILL by default, as a crash would) and starts it again on the same port and data. */
  restart(signal?: NodeJS.Signals): Promise<void>;
}

export interface RedisOptions {
  /** Append-only file with fsync on every write, so a restart keeps every acknowledged write. */
  appendOnly?: boolean;
}

/** Starts a real redis-server on a free loopback port with its data in a temp dir. */
export function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  return startLocalServer({
    binary: 'redis-server',
    envVar: 'REDIS_SERVER',
    scheme: 'redis',
    restartSignal: 'SIGKILL',
    restartGraceMs: 2000,
    command: (dir, port) =>
      Promise.resolve({
        args: [
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
        ],
        ready: { line: /Ready to accept connections/ },
      }),
  });
}

/**
 * A Redis server and a client on it for the tests of a file or suite: started before they run,
 * stopped after. Read `server` and `client` inside tests and hooks, not at the top level.
 */
export function useRedis(): { readonly server: RedisServer; readonly client: Redis } {
  let server: RedisServer | undefined;
  let client: Redis | undefined;
  before(async () => {
    server = await startRedis();
    client = new Redis(server.url);
  });
  after(async () => {
    client?.disconnect();
    await server?.stop();
  });
  return {
    get server() {
      return server!;
    },
    get client() {
      return client!;
    },
  };
}
