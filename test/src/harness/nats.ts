import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startProcess, type RunningProcess } from './process.js';

export interface NatsServer {
  readonly port: number;
  /** nats://127.0.0.1:<port> */
  readonly url: string;
  readonly dir: string;
  readonly process: RunningProcess;
  /** Stops the server (SIGTERM: it saves its state) and starts it again on the same port and store. */
  restart(signal?: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a real nats-server with JetStream on a free loopback port, its store in a temp dir.
 * Ready when its monitoring /healthz says so, which includes JetStream being up.
 */
export async function startNatsServer(): Promise<NatsServer> {
  const binary = process.env.NATS_SERVER ?? 'nats-server';
  try {
    execFileSync(binary, ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(`${binary} is not installed: run "apt-get install nats-server" (or set NATS_SERVER)`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'hearth-nats-'));
  try {
    const [port, monitorPort] = await Promise.all([freePort(), freePort()]);
    const start = () =>
      startProcess({
        name: `nats:${port}`,
        command: binary,
        args: ['-js', '-sd', dir, '-a', '127.0.0.1', '-p', String(port), '-m', String(monitorPort)],
        ready: { url: `http://127.0.0.1:${monitorPort}/healthz` },
      });
    let current = await start();
    return {
      port,
      url: `nats://127.0.0.1:${port}`,
      dir,
      get process() {
        return current;
      },
      async restart(signal = 'SIGTERM') {
        await current.stop(signal, 5000);
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
