import { freePort } from './process.js';
import { startLocalServer, type LocalServer } from './server.js';

export interface NatsServer extends LocalServer {
  /** nats://127.0.0.1:<port> */
  readonly url: string;
  /** Stops the server (SIGTERM: it saves its state) and starts it again on the same port and store. */
  restart(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts a real nats-server with JetStream on a free loopback port, its store in a temp dir.
 * Ready when its monitoring /healthz says so, which includes JetStream being up.
 */
export function startNatsServer(): Promise<NatsServer> {
  return startLocalServer({
    binary: 'nats-server',
    envVar: 'NATS_SERVER',
    scheme: 'nats',
    restartSignal: 'SIGTERM',
    restartGraceMs: 5000,
    command: async (dir, port) => {
      const monitorPort = await freePort();
      return {
        args: ['-js', '-sd', dir, '-a', '127.0.0.1', '-p', String(port), '-m', String(monitorPort)],
        ready: { url: `http://127.0.0.1:${monitorPort}/healthz` },
      };
    },
  });
}
