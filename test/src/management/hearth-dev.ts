import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startProcess, type RunningProcess } from '../harness/index.js';

/** The built `hearth` command. */
export const hearthMain = fileURLToPath(import.meta.resolve('@hearth/cli/main'));

export interface HearthDev {
  url: string;
  /** The --dir it watches (a temp dir, removed on stop). */
  dir: string;
  process: RunningProcess;
  stop(): Promise<void>;
}

/**
 * `hearth dev --dir <temp> --port <free>` from the built CLI, ready once the gateway answers
 * /healthz. `env` is added to its environment, which the gateway and controller inherit.
 */
export async function startHearthDev(env: NodeJS.ProcessEnv = {}): Promise<HearthDev> {
  const dir = await mkdtemp(join(tmpdir(), 'hearth-dev-fns-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const running = await startProcess({
    name: 'hearth-dev',
    command: process.execPath,
    args: [hearthMain, 'dev', '--dir', dir, '--port', String(port)],
    env: { ...process.env, HEARTH_URL: '', HEARTH_TOKEN: '', ...env },
    ready: { url: `${url}/healthz` },
    readyTimeoutMs: 60_000,
  });
  return {
    url,
    dir,
    process: running,
    async stop() {
      await running.stop('SIGINT', 15_000);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
