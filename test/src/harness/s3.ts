import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort, startProcess, type RunningProcess } from './process.js';

/** Why S3 tests skip: gofakes3 is built by scripts/peers/install.sh, not by the tests. */
export const GOFAKES3_MISSING =
  'gofakes3 (an S3-compatible server) is not built: run scripts/peers/install.sh, or set GOFAKES3 to its binary';

/** The gofakes3 binary: $GOFAKES3, else the one scripts/peers/gofakes3.sh built; undefined when neither. */
export function findGofakes3(): string | undefined {
  if (process.env.GOFAKES3) return process.env.GOFAKES3;
  const script = fileURLToPath(new URL('../../../scripts/peers/gofakes3.sh', import.meta.url));
  try {
    return execFileSync('bash', [script, '--installed'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return undefined;
  }
}

export interface S3Server {
  /** http://127.0.0.1:<port>, for path-style addressing. */
  readonly endpoint: string;
  /** A bucket that exists from the start. */
  readonly bucket: string;
  readonly process: RunningProcess;
  stop(): Promise<void>;
}

/**
 * Starts gofakes3 on a free loopback port with an in-memory store and one bucket. It accepts any
 * credentials, as long as requests are signed.
 */
export async function startS3Server(bucket = 'hearth-code'): Promise<S3Server> {
  const binary = findGofakes3();
  if (!binary) throw new Error(GOFAKES3_MISSING);
  const port = await freePort();
  const running = await startProcess({
    name: `gofakes3:${port}`,
    command: binary,
    args: ['-backend', 'memory', '-host', `127.0.0.1:${port}`, '-initialbucket', bucket],
    // Logged once it listens.
    ready: { line: /using port:/ },
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    process: running,
    stop: () => running.stop('SIGKILL'),
  };
}
