/**
 * The controller program (`@hearth/controller/main`, process backend, as `hearth dev` runs it) in
 * a process of its own, so that tests can run two of them side by side and SIGKILL one.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { EVENT_SOURCE_LEASE_KEY } from '@hearth/controller/event-sources/lease';
import { freePort, startProcess, type RunningProcess } from '../harness/index.js';

const CONTROLLER_MAIN = fileURLToPath(import.meta.resolve('@hearth/controller/main'));

export interface ControllerProcess {
  process: RunningProcess;
  metricsUrl: string;
  /** False once the process exited, for whatever reason. */
  alive(): boolean;
  /** The pids of the processes it started (its shims), while it runs. */
  children(): number[];
  /** The value of a metric of this controller's /metrics, summed over the series matching `labels`. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

/**
 * Starts a controller with `env` (HEARTH_REDIS_URL, HEARTH_FUNCTIONS_DIR, HEARTH_GATEWAY_URL, ...)
 * and waits for its /healthz. Its shims end with it, however it ends (HEARTH_STOP_WITH_STDIN).
 */
export async function startController(name: string, env: Record<string, string>): Promise<ControllerProcess> {
  const metricsPort = await freePort();
  const process = await startProcess({
    name,
    command: globalThis.process.execPath,
    args: [CONTROLLER_MAIN],
    env: {
      ...globalThis.process.env,
      HEARTH_BACKEND: 'process',
      HEARTH_METRICS_PORT: String(metricsPort),
      HEARTH_METRICS_HOST: '127.0.0.1',
      HEARTH_LOG_LEVEL: 'info',
      ...env,
    },
    ready: { url: `http://127.0.0.1:${metricsPort}/healthz` },
    readyTimeoutMs: 60_000,
  });
  let exited = false;
  void process.exited.then(() => (exited = true));
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  return {
    process,
    metricsUrl,
    alive: () => !exited,
    children: () =>
      readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8')
        .split(' ')
        .filter(Boolean)
        .map(Number),
    async metric(metricName, labels = {}) {
      const text = await (await fetch(metricsUrl)).text();
      let sum = 0;
      for (const [, series, value] of text.matchAll(
        new RegExp(`^${metricName}\\{([^}]*)\\} (\\S+)$`, 'gm'),
      )) {
        if (Object.entries(labels).every(([label, wanted]) => series!.includes(`${label}="${wanted}"`)))
          sum += Number(value);
      }
      return sum;
    },
  };
}

/** Which of `controllers` holds the event source lease (runs the mappings), once one does. */
export async function leaseHolder(
  redis: Redis,
  controllers: ControllerProcess[],
  timeoutMs = 30_000,
): Promise<ControllerProcess> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const holder = await redis.get(EVENT_SOURCE_LEASE_KEY);
    const pid = holder?.split(':').at(-2);
    const found = controllers.find((c) => String(c.process.pid) === pid);
    if (found) return found;
    if (Date.now() > deadline)
      throw new Error(`no controller took the event source lease (holder: ${holder})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
