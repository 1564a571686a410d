import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import {
  RedisKeys,
  ShimEnv,
  concurrencyEnv,
  validateFunctionSpec,
  type FunctionRoute,
  type InstanceEndpoint,
  type PushMapping,
} from '@hearth/api';
import { freePort, startProcess, type RunningProcess } from '../harness/index.js';

const SHIM_MAIN = fileURLToPath(import.meta.resolve('@hearth/runtime-shim/main'));
const GATEWAY_MAIN = fileURLToPath(import.meta.resolve('@hearth/gateway/main'));

export const ACCESS_KEY = { accessKeyId: 'AKIDHEARTHTEST', secretAccessKey: 'hearth-test-secret' };
export const API_KEY = 'hearth-test-api-key';

/** A Node.js function: `index.mjs` exporting `handler`. */
export interface TestFunction {
  name: string;
  source: string;
  /** Spec fields besides runtime, handler and code; validated (and defaulted) like a manifest. */
  spec?: Record<string, unknown>;
}

export interface RunningInstance {
  endpoint: InstanceEndpoint;
  process: RunningProcess;
}

export interface RunningGateway {
  url: string;
  process: RunningProcess;
  /** The gateway's RSS as its own /metrics says. */
  residentBytes(): Promise<number>;
}

/**
 * Plays the controller for gateway tests: writes functions and instances into the registry keys
 * of api/registry.ts, starts real runtime-shim processes, and starts gateway processes.
 */
export class GatewayFixture {
  readonly redis: Redis;
  private readonly cleanups: (() => Promise<unknown>)[] = [];

  constructor(readonly redisUrl: string) {
    this.redis = new Redis(redisUrl);
  }

  async addFunction(fn: TestFunction, revision = 'r1'): Promise<FunctionRoute> {
    const result = validateFunctionSpec({
      runtime: 'nodejs20.x',
      handler: 'index.handler',
      code: { inline: { files: { 'index.mjs': fn.source } } },
      // Lambda's 3 s default can pass in a cold start alone on a busy machine.
      timeoutSeconds: 30,
      ...fn.spec,
    });
    if (!result.spec) throw new Error(`bad test spec: ${JSON.stringify(result.problems)}`);
    const route: FunctionRoute = {
      name: fn.name,
      revision,
      spec: result.spec,
      state: 'Active',
      lastModified: new Date().toISOString(),
    };
    await this.redis
      .multi()
      .set(RedisKeys.function(fn.name), JSON.stringify(route))
      .sadd(RedisKeys.functions, fn.name)
      .publish(RedisKeys.registryChannel, fn.name)
      .exec();
    return route;
  }

  /**
   * Starts a shim for the route and registers it as a ready instance. Its code is the route's
   * inline files in a temporary directory, or `options.codeDir` as it is (a fixture folder in the
   * repo, whose imports resolve from the repo's node_modules).
   */
  async addInstance(
    route: FunctionRoute,
    id = `${route.name}-${Math.random().toString(36).slice(2, 8)}`,
    options: { codeDir?: string } = {},
  ): Promise<RunningInstance> {
    let codeDir = options.codeDir;
    if (codeDir === undefined) {
      const dir = await mkdtemp(join(tmpdir(), 'hearth-gw-fn-'));
      this.cleanups.push(() => rm(dir, { recursive: true, force: true }));
      for (const [file, content] of Object.entries(route.spec.code.inline?.files ?? {}))
        await writeFile(join(dir, file), content);
      codeDir = dir;
    }
    const port = await freePort();
    const process = await startProcess({
      name: `shim:${id}`,
      command: globalThis.process.execPath,
      args: [SHIM_MAIN],
      env: {
        ...globalThis.process.env,
        // The function's own variables (plain values), as the controller passes them.
        ...Object.fromEntries(
          (route.spec.env ?? []).flatMap((v) => (v.value === undefined ? [] : [[v.name, v.value]])),
        ),
        [ShimEnv.functionName]: route.name,
        [ShimEnv.revision]: route.revision,
        [ShimEnv.runtime]: route.spec.runtime,
        [ShimEnv.handler]: route.spec.handler,
        [ShimEnv.codeDir]: codeDir,
        [ShimEnv.timeoutSeconds]: String(route.spec.timeoutSeconds),
        ...concurrencyEnv(route.spec.concurrency),
        [ShimEnv.host]: '127.0.0.1',
        [ShimEnv.port]: String(port),
        [ShimEnv.isolation]: 'portable',
        [ShimEnv.logLevel]: 'warn',
      },
      ready: { url: `http://127.0.0.1:${port}/readyz` },
      // Generous: the team's machine is shared, and a busy one starts processes slowly.
      readyTimeoutMs: 60_000,
    });
    this.cleanups.push(() => process.stop('SIGKILL'));
    const endpoint: InstanceEndpoint = {
      id,
      function: route.name,
      revision: route.revision,
      url: `http://127.0.0.1:${port}`,
      ready: true,
      draining: false,
    };
    await this.setInstance(endpoint);
    return { endpoint, process };
  }

  async setInstance(endpoint: InstanceEndpoint): Promise<void> {
    await this.redis
      .multi()
      .hset(RedisKeys.instances(endpoint.function), endpoint.id, JSON.stringify(endpoint))
      .publish(RedisKeys.registryChannel, endpoint.function)
      .exec();
  }

  /** Publishes a push mapping (HTTP route, bucket notifications) as the controller does. */
  async setPushMapping(mapping: PushMapping): Promise<void> {
    await this.redis
      .multi()
      .hset(RedisKeys.pushMappings, mapping.name, JSON.stringify(mapping))
      .publish(RedisKeys.pushMappingsChannel, mapping.name)
      .exec();
  }

  async removeInstance(endpoint: InstanceEndpoint): Promise<void> {
    await this.redis
      .multi()
      .hdel(RedisKeys.instances(endpoint.function), endpoint.id)
      .publish(RedisKeys.registryChannel, endpoint.function)
      .exec();
  }

  /**
   * A gateway process (`gateway/dist/main.js`, or `main`: another build, for comparisons) with
   * auth on, on a free port; `nodeArgs` go to node (e.g. `--cpu-prof`).
   */
  async startGateway(
    env: Record<string, string> = {},
    nodeArgs: string[] = [],
    main = GATEWAY_MAIN,
  ): Promise<RunningGateway> {
    const port = await freePort();
    const process = await startProcess({
      name: `gateway:${port}`,
      command: globalThis.process.execPath,
      args: [...nodeArgs, main, `--port=${port}`, '--host=127.0.0.1'],
      env: {
        ...globalThis.process.env,
        HEARTH_REDIS_URL: this.redisUrl,
        HEARTH_ACCESS_KEYS: `${ACCESS_KEY.accessKeyId}:${ACCESS_KEY.secretAccessKey}`,
        HEARTH_API_KEYS: API_KEY,
        HEARTH_LOG_LEVEL: 'warn',
        HEARTH_DISCOVERY_RESYNC_MS: '1000',
        ...env,
      },
      ready: { url: `http://127.0.0.1:${port}/healthz` },
      readyTimeoutMs: 60_000,
    });
    this.cleanups.push(() => process.stop('SIGTERM', 3000));
    const url = `http://127.0.0.1:${port}`;
    return {
      url,
      process,
      async residentBytes() {
        const text = await (await fetch(`${url}/metrics`)).text();
        const match = /^hearth_process_resident_memory_bytes (\S+)$/m.exec(text);
        if (!match) throw new Error('no resident memory metric');
        return Number(match[1]);
      },
    };
  }

  async stop(): Promise<void> {
    // Taken out first, so that a second stop() has nothing left to do.
    for (const cleanup of this.cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
    this.redis.disconnect();
  }
}

/** A handler that sleeps `event.ms` and reports when it ran, so tests can measure overlap. */
export const SLEEPER = `
export const handler = async (event) => {
  const start = Date.now();
  await new Promise((resolve) => setTimeout(resolve, event.ms ?? 0));
  return { start, end: Date.now() };
};
`;

/** The most intervals that overlap at one instant. */
export function maxOverlap(intervals: { start: number; end: number }[]): number {
  const edges = intervals.flatMap((i) => [
    [i.start, 1],
    [i.end, -1],
  ]) as [number, number][];
  // At equal times an end comes before a start: back-to-back calls do not overlap.
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let current = 0;
  let max = 0;
  for (const [, delta] of edges) {
    current += delta;
    max = Math.max(max, current);
  }
  return max;
}

/** Polls `check` every 25 ms until it holds; fails the test after `timeoutMs`. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `timed out waiting: ${what}`);
    await sleep(25);
  }
}
