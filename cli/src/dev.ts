import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFileSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { RedisKeys, type FunctionRoute, type InstanceEndpoint } from '@hearth/api';
import { startChild, type Child } from './children.js';
import { CliError } from './errors.js';

export interface DevOptions {
  port: number;
  dir: string;
  redisUrl?: string;
}

/** Where a workspace's program is, without importing it (the CLI shares only `api`). */
function programOf(specifier: string): string {
  return fileURLToPath(import.meta.resolve(specifier));
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port')),
      );
    });
  });
}

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  exited: Promise<unknown>,
  timeoutMs: number,
) {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (gone) throw new CliError(`${what} exited while starting (its output is above)`);
    if (await check().catch(() => false)) return;
    await sleep(50);
  }
  throw new CliError(`${what} did not get ready within ${timeoutMs / 1000} s (its output is above)`);
}

/** One line per function, for a person. */
export function describeFunction(route: FunctionRoute, instances: InstanceEndpoint[]): string {
  const current = instances.filter((i) => i.revision === route.revision);
  const ready = current.filter((i) => i.ready && !i.draining).length;
  const draining = instances.length - current.length + current.filter((i) => i.draining).length;
  const reason = route.state === 'Failed' && route.stateReason ? ` (${route.stateReason})` : '';
  return `${route.name}: ${route.state}${reason}, revision ${route.revision.slice(0, 10)}, ${ready} ready${draining ? `, ${draining} draining` : ''}`;
}

/**
 * The whole platform on this machine: Redis (spawned unless one is given), the controller with
 * the process backend watching a manifest directory, and the gateway with its async workers and
 * auth off. Runs until Ctrl-C, then stops everything it started.
 */
export async function runDev(options: DevOptions): Promise<number> {
  const dir = resolve(options.dir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new CliError(
      `${options.dir} is not a directory: create it and put Function manifests (*.yaml) in it, or pass --dir`,
    );
  }
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const children: Child[] = [];
  let scratch: string | undefined;
  let shuttingDown = false;

  const shutdown = async () => {
    shuttingDown = true;
    for (const child of [...children].reverse()) await child.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  };

  try {
    let redisUrl = options.redisUrl;
    if (!redisUrl) {
      try {
        execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
      } catch {
        throw new CliError(
          'redis-server is not installed: run "sudo apt-get install redis-server", or pass --redis-url',
        );
      }
      scratch = await mkdtemp(join(tmpdir(), 'hearth-dev-'));
      const redisPort = await freePort();
      const redis = startChild(
        'redis',
        'redis-server',
        [
          '--port',
          String(redisPort),
          '--bind',
          '127.0.0.1',
          '--dir',
          scratch,
          '--save',
          '',
          '--appendonly',
          'no',
          '--maxmemory-policy',
          'noeviction',
          '--loglevel',
          'warning',
        ],
        process.env,
        say,
      );
      children.push(redis);
      redisUrl = `redis://127.0.0.1:${redisPort}`;
      const probe = new Redis(redisUrl, {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      probe.on('error', () => {});
      await waitFor(
        'redis-server',
        async () => (await probe.connect().then(() => probe.ping())) === 'PONG',
        redis.exited,
        10_000,
      );
      probe.disconnect();
    }

    const env = { ...process.env, HEARTH_REDIS_URL: redisUrl };
    const gatewayUrl = `http://127.0.0.1:${options.port}`;
    const controllerMetricsPort = await freePort();
    const controller = startChild(
      'controller',
      process.execPath,
      [programOf('@hearth/controller/main')],
      {
        ...env,
        HEARTH_BACKEND: 'process',
        HEARTH_FUNCTIONS_DIR: dir,
        // Schedules and stream mappings invoke functions through the gateway (auth is off here).
        HEARTH_GATEWAY_URL: gatewayUrl,
        HEARTH_METRICS_PORT: String(controllerMetricsPort),
        HEARTH_METRICS_HOST: '127.0.0.1',
      },
      say,
    );
    children.push(controller);
    // The gateway starts once the controller has registered the functions it found, so that the
    // first call after "Hearth is running" waits for a cold start instead of answering 404.
    await waitFor(
      'the controller',
      async () => (await fetch(`http://127.0.0.1:${controllerMetricsPort}/healthz`)).ok,
      controller.exited,
      30_000,
    );
    const gateway = startChild(
      'gateway',
      process.execPath,
      // The management API writes manifests into the directory the controller watches, and keeps
      // uploaded code beside them (in .hearth/code) so that they survive a restart together.
      [
        programOf('@hearth/gateway/main'),
        `--port=${options.port}`,
        '--host=127.0.0.1',
        '--auth=false',
        '--role=all',
        `--functions-dir=${dir}`,
      ],
      env,
      say,
    );
    children.push(gateway);
    await waitFor(
      'the gateway',
      async () => (await fetch(`${gatewayUrl}/healthz`)).ok,
      gateway.exited,
      20_000,
    );

    say('');
    say(`Hearth is running (Ctrl-C stops it)`);
    say(`  gateway    ${gatewayUrl}   (Lambda API at /2015-03-31/..., metrics at /metrics, auth off)`);
    say(`  controller http://127.0.0.1:${controllerMetricsPort}/metrics   (event source mappings)`);
    say(`  redis      ${redisUrl}${options.redisUrl ? '' : '   (started by hearth dev)'}`);
    say(`  functions  ${dir}`);
    say(`  invoke     curl -s -X POST ${gatewayUrl}/function/NAME -d '{}'`);
    say('');

    const watcher = watchFunctions(redisUrl, say);
    const anyExit = Promise.race(children.map((c) => c.exited.then((code) => ({ child: c, code }))));
    const interrupted = new Promise<'signal'>((resolveSignal) => {
      process.once('SIGINT', () => resolveSignal('signal'));
      process.once('SIGTERM', () => resolveSignal('signal'));
    });
    const outcome = await Promise.race([anyExit, interrupted]);
    await watcher.stop();
    if (outcome === 'signal') {
      say('stopping...');
      await shutdown();
      return 0;
    }
    if (!shuttingDown) say(`${outcome.child.name} exited (code ${outcome.code}): stopping everything`);
    await shutdown();
    return 1;
  } catch (error) {
    await shutdown();
    throw error;
  }
}

/** Prints a line whenever a function's state, revision or instance count changes. */
function watchFunctions(redisUrl: string, say: (line: string) => void): { stop(): Promise<void> } {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  const shown = new Map<string, string>();
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const names = await redis.smembers(RedisKeys.functions);
        for (const name of names.sort()) {
          const raw = await redis.get(RedisKeys.function(name));
          if (!raw) continue;
          const instances = Object.values(await redis.hgetall(RedisKeys.instances(name))).map(
            (v) => JSON.parse(v) as InstanceEndpoint,
          );
          const line = describeFunction(JSON.parse(raw) as FunctionRoute, instances);
          if (shown.get(name) !== line) say(`function ${line}`);
          shown.set(name, line);
        }
        for (const name of shown.keys()) {
          if (!names.includes(name)) {
            say(`function ${name}: removed`);
            shown.delete(name);
          }
        }
      } catch {
        // Redis going away is reported by its own exit.
      }
      await sleep(500);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      redis.disconnect();
    },
  };
}
