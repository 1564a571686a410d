import { setTimeout as sleep } from 'node:timers/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';
import {
  quantityToMb,
  RedisKeys,
  ShimEnv,
  concurrencyEnv,
  shimEnvName,
  ShimPaths,
  type FunctionRoute,
  type FunctionSpec,
} from '@hearth/api';
import { ArchiveError, unpackArchive } from './archive.js';
import { EventSourceMetrics } from './event-sources/metrics.js';
import { RedisMappingStatus } from './event-sources/redis-state.js';
import { createMappingSupervisor, type EventSourceSettings } from './event-sources/start.js';
import { stableUid, type DesiredMapping } from './event-sources/supervisor.js';
import { FunctionLogs } from './function-logs.js';
import { describeProblem, loadManifests, type ManifestProblem, type ManifestSet } from './manifests.js';
import { nextPoolSize, totalDemand, type PoolState } from './pool.js';
import { runWorkers, WorkQueue, type ReconcileResult } from './queue.js';
import { RegistryWriter } from './registry.js';
import { revisionHash } from './revision.js';

export interface ProcessControllerOptions {
  redisUrl: string;
  /** Where the Function manifests are (`*.yaml`, `*.yml`, `*.json`, as for kubectl apply). */
  functionsDir: string;
  /** Code and instance scratch directories; a fresh temp dir (removed on stop) by default. */
  stateDir?: string;
  /** The runtime shim's main module; by default the workspace's runtime-shim/dist/main.cjs. */
  shimEntry?: string;
  /** Passed to every shim as HEARTH_ISOLATION. */
  isolation?: 'auto' | 'portable';
  /** More HEARTH_* settings for every shim (e.g. HEARTH_LOG_LEVEL). */
  shimEnv?: Record<string, string>;
  logger?: Logger;
  /** How often the manifest directory is read again besides file-change events. */
  scanIntervalMs?: number;
  /** How often each function's demand is read again besides demand-channel messages. */
  pollIntervalMs?: number;
  /** Receives the output of every instance; by default it goes to stderr prefixed with the function. */
  instanceOutput?: (functionName: string, instanceId: string, text: string) => void;
  /**
   * How EventSourceMappings invoke functions (the gateway's URL and key) and where they count.
   * Without a gateway URL, schedules and stream mappings are Failed and say why.
   */
  eventSources?: EventSourceSettings;
}

export interface ProcessController {
  readonly stateDir: string;
  /** Manifests that could not be used, each naming its file and field. */
  problems(): ManifestProblem[];
  /** Reads the manifest directory now (instead of at the next change or interval). */
  rescan(): Promise<void>;
  stop(): Promise<void>;
}

interface Instance {
  id: string;
  functionName: string;
  revision: string;
  url: string;
  child: ChildProcess;
  ready: boolean;
  draining: boolean;
  exited: Promise<void>;
  /** The last output, for the reason of a failed start. */
  tail: string;
  /** Ends the readiness check's wait between two probes early. */
  wakeReadyCheck?: () => void;
}

interface FunctionState {
  serving?: { revision: string; spec: FunctionSpec };
  pool?: PoolState;
  instances: Map<string, Instance>;
  /** Starts of the current revision that ended before the instance was ready, in a row. */
  failedStarts: number;
  failedRevision?: string;
  lastFailure?: string;
  nextStartAt: number;
  route?: string;
  lastModified: string;
}

const NAMESPACE = 'default';
/** After this many failed starts in a row a function is Failed until its code changes. */
const FAILED_AFTER = 3;
const READY_TIMEOUT_MS = 30_000;

function defaultShimEntry(): string {
  if (process.env.HEARTH_SHIM_ENTRY) return process.env.HEARTH_SHIM_ENTRY;
  return fileURLToPath(import.meta.resolve('@hearth/runtime-shim/main'));
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** A problem with inline file names that would write outside the code directory. */
function unsafeFileName(spec: FunctionSpec): string | undefined {
  for (const path of Object.keys(spec.code.inline?.files ?? {})) {
    if (path === '' || isAbsolute(path) || normalize(path).split(/[\\/]/).includes('..')) {
      return `spec.code.inline.files: "${path}" must be a relative path inside the code directory`;
    }
  }
  return undefined;
}

function unsupported(spec: FunctionSpec): string | undefined {
  if (spec.code.configMap)
    return 'spec.code.configMap needs the kubernetes backend; use spec.code.inline in process mode';
  if (spec.code.image) return 'spec.code.image needs the kubernetes backend';
  return unsafeFileName(spec);
}

/** The mappings the manifests declare, valid or not (invalid ones are Failed in their status). */
function desiredMappings(set: ManifestSet): Map<string, DesiredMapping> {
  const desired = new Map<string, DesiredMapping>();
  const entry = (name: string) => {
    const id = `${NAMESPACE}/${name}`;
    return { id, name, namespace: NAMESPACE, uid: stableUid(id) };
  };
  for (const [name, { resource }] of set.mappings) {
    desired.set(`${NAMESPACE}/${name}`, {
      ...entry(name),
      spec: resource.spec,
      functionExists: set.functions.has(resource.spec.functionName),
    });
  }
  for (const problem of set.problems) {
    if (problem.kind !== 'EventSourceMapping' || !problem.name || set.mappings.has(problem.name)) continue;
    const id = `${NAMESPACE}/${problem.name}`;
    const invalid = desired.get(id) ?? { ...entry(problem.name), problems: [], functionExists: false };
    invalid.problems!.push({ path: problem.path, message: problem.message });
    desired.set(id, invalid);
  }
  return desired;
}

/**
 * The process backend: Functions from manifest files, instances as local runtime-shim processes on
 * loopback ports, the registry in Redis. What `hearth dev` runs.
 */
export async function startProcessController(options: ProcessControllerOptions): Promise<ProcessController> {
  const log = options.logger ?? pino({ name: 'hearth-controller' });
  const scanIntervalMs = options.scanIntervalMs ?? 2000;
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const shimEntry = options.shimEntry ?? defaultShimEntry();
  const ownsStateDir = options.stateDir === undefined;
  const stateDir = options.stateDir ?? (await mkdtemp(join(tmpdir(), 'hearth-dev-')));
  await mkdir(stateDir, { recursive: true });
  if (!(await stat(options.functionsDir).catch(() => undefined))?.isDirectory()) {
    throw new Error(`functions directory ${options.functionsDir} does not exist`);
  }
  const output =
    options.instanceOutput ??
    ((fn: string, _id: string, text: string) => process.stderr.write(text.replace(/^(?=.)/gm, `[${fn}] `)));

  const redis = new Redis(options.redisUrl, { lazyConnect: true });
  const subscriber = new Redis(options.redisUrl, { lazyConnect: true });
  // ioredis reconnects by itself; say so now and then rather than once per retry.
  let lastRedisError = 0;
  const onRedisError = (error: Error) => {
    if (Date.now() - lastRedisError < 30_000) return;
    lastRedisError = Date.now();
    log.warn({ err: error }, 'lost the connection to Redis; reconnecting');
  };
  redis.on('error', onRedisError);
  subscriber.on('error', onRedisError);
  await redis.connect();
  await subscriber.connect();
  const registry = new RegistryWriter(redis);
  const logs = new FunctionLogs(redis);
  const queue = new WorkQueue();
  const states = new Map<string, FunctionState>();
  let manifests: ManifestSet = { functions: new Map(), mappings: new Map(), problems: [] };
  const eventSources = createMappingSupervisor({
    settings: options.eventSources ?? { metrics: new EventSourceMetrics(new Registry()) },
    redis,
    redisUrl: options.redisUrl,
    statusWriter: new RedisMappingStatus(redis),
    logger: log,
  });
  let reported = new Set<string>();
  let stopping = false;

  const keyOf = (name: string) => `${NAMESPACE}/${name}`;
  const nameOf = (key: string) => key.slice(key.indexOf('/') + 1);
  const stateOf = (name: string) => {
    let state = states.get(name);
    if (!state) {
      state = {
        instances: new Map(),
        failedStarts: 0,
        nextStartAt: 0,
        lastModified: new Date().toISOString(),
      };
      states.set(name, state);
    }
    return state;
  };

  // Scans run one after another, so a slow one never overwrites what a later one read.
  let scanning = Promise.resolve();
  function scan(): Promise<void> {
    scanning = scanning.then(readManifests);
    return scanning;
  }

  async function readManifests(): Promise<void> {
    let next: ManifestSet;
    try {
      next = await loadManifests(options.functionsDir);
    } catch (error) {
      log.error({ err: error, dir: options.functionsDir }, 'could not read the functions directory');
      return;
    }
    const fresh = new Set(next.problems.map(describeProblem));
    for (const problem of fresh) if (!reported.has(problem)) log.error(`invalid manifest: ${problem}`);
    reported = fresh;
    const before = manifests;
    manifests = next;
    for (const name of new Set([...before.functions.keys(), ...next.functions.keys()])) {
      const a = before.functions.get(name)?.resource;
      const b = next.functions.get(name)?.resource;
      if (JSON.stringify(a) !== JSON.stringify(b)) queue.add(keyOf(name));
    }
    if (stopping) return;
    try {
      await eventSources.supervisor.reconcile(desiredMappings(next));
    } catch (error) {
      log.error({ err: error }, 'could not reconcile event source mappings; will retry at the next scan');
    }
  }

  async function ensureCode(name: string, revision: string, spec: FunctionSpec): Promise<string> {
    const dir = join(stateDir, 'code', name, revision);
    if (await stat(dir).catch(() => undefined)) return dir;
    // Written aside and renamed, so an instance never sees half a revision.
    const staging = `${dir}.${randomBytes(4).toString('hex')}.tmp`;
    for (const [path, content] of Object.entries(spec.code.inline?.files ?? {})) {
      const file = join(staging, path);
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, content);
    }
    if (spec.code.archive)
      await unpackArchive(spec.code.archive, staging, { token: process.env.HEARTH_TOKEN });
    await mkdir(staging, { recursive: true });
    await rename(staging, dir);
    return dir;
  }

  function shimEnvironment(
    name: string,
    revision: string,
    spec: FunctionSpec,
    codeDir: string,
    port: number,
    id: string,
  ) {
    const env: Record<string, string> = {
      // The function's environment is what the shim passes on; keep the controller's own out of it.
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      LANG: 'en_US.UTF-8',
      TZ: ':UTC',
    };
    for (const variable of spec.env ?? []) {
      if (variable.value !== undefined) env[shimEnvName(variable.name)] = variable.value;
      else
        log.warn(
          { function: name, variable: variable.name },
          'valueFrom is not supported in process mode; variable left unset',
        );
    }
    Object.assign(env, options.shimEnv ?? {}, {
      [ShimEnv.functionName]: name,
      [ShimEnv.revision]: revision,
      [ShimEnv.runtime]: spec.runtime,
      [ShimEnv.handler]: spec.handler,
      [ShimEnv.codeDir]: codeDir,
      [ShimEnv.memoryMb]: String(quantityToMb(spec.memory)),
      [ShimEnv.timeoutSeconds]: String(spec.timeoutSeconds),
      [ShimEnv.ephemeralStorageMb]: String(quantityToMb(spec.ephemeralStorage)),
      [ShimEnv.port]: String(port),
      [ShimEnv.host]: '127.0.0.1',
      ...concurrencyEnv(spec.concurrency),
      [ShimEnv.stateDir]: join(stateDir, 'instances', id),
      [ShimEnv.stopWithStdin]: '1',
    });
    if (options.isolation) env[ShimEnv.isolation] = options.isolation;
    return env;
  }

  async function startInstance(
    name: string,
    revision: string,
    spec: FunctionSpec,
    codeDir: string,
  ): Promise<void> {
    const state = stateOf(name);
    const port = await freePort();
    const id = `${revision}-${randomBytes(3).toString('hex')}`;
    await mkdir(join(stateDir, 'instances', id), { recursive: true });
    const child = spawn(process.execPath, [shimEntry], {
      env: shimEnvironment(name, revision, spec, codeDir, port, id),
      // The shim stops when its stdin closes: this process holds the pipe's other end, so its
      // shims end with it even when it is killed with SIGKILL.
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group: stopping an instance also ends the runtime processes it started.
      detached: true,
    });
    const instance: Instance = {
      id,
      functionName: name,
      revision,
      url: `http://127.0.0.1:${port}`,
      child,
      ready: false,
      draining: false,
      tail: '',
      exited: new Promise((resolve) => child.once('exit', () => resolve())),
    };
    const onOutput = (data: Buffer) => {
      const text = data.toString();
      instance.tail = (instance.tail + text).slice(-2000);
      output(name, id, text);
      logs.append(name, id, text);
      // A starting shim logs as it gets ready ("runtimes initialized: ready"): probe now rather
      // than at the next tick, which would add up to a tick to every cold start.
      instance.wakeReadyCheck?.();
    };
    child.stdout!.on('data', onOutput);
    child.stderr!.on('data', onOutput);
    child.once('error', (error) =>
      log.error({ err: error, function: name, instance: id }, 'could not start the runtime shim'),
    );
    state.instances.set(id, instance);
    log.info({ function: name, revision, instance: id, url: instance.url }, 'started instance');
    await registry.putInstance({
      id,
      function: name,
      revision,
      url: instance.url,
      ready: false,
      draining: false,
    });

    void instance.exited.then(async () => {
      state.instances.delete(id);
      if (!instance.draining && !stopping) {
        log.warn(
          { function: name, instance: id, code: child.exitCode, signal: child.signalCode },
          'instance exited unexpectedly',
        );
        if (!instance.ready) {
          state.failedStarts = state.failedRevision === revision ? state.failedStarts + 1 : 1;
          state.failedRevision = revision;
          state.lastFailure = instance.tail.trim().split('\n').slice(-3).join(' | ');
          state.nextStartAt = Date.now() + Math.min(30_000, 250 * 2 ** state.failedStarts);
        }
      } else {
        log.info({ function: name, instance: id }, 'instance stopped');
      }
      if (!stopping) {
        await registry
          .removeInstance(name, id)
          .catch((error) => log.error({ err: error }, 'could not unregister instance'));
        queue.add(keyOf(name));
      }
    });
    void waitReady(instance);
  }

  async function waitReady(instance: Instance): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let exited = false;
    void instance.exited.then(() => (exited = true));
    while (!exited && !instance.draining && Date.now() < deadline) {
      try {
        const response = await fetch(`${instance.url}${ShimPaths.readyz}`, {
          signal: AbortSignal.timeout(1000),
        });
        await response.arrayBuffer();
        if (response.ok) {
          if (exited || instance.draining || stopping) return;
          instance.ready = true;
          const state = stateOf(instance.functionName);
          if (state.failedRevision === instance.revision) state.failedStarts = 0;
          log.info({ function: instance.functionName, instance: instance.id }, 'instance became ready');
          await registry.putInstance({
            id: instance.id,
            function: instance.functionName,
            revision: instance.revision,
            url: instance.url,
            ready: true,
            draining: false,
          });
          queue.add(keyOf(instance.functionName));
          return;
        }
      } catch {
        // not listening yet
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 25);
        instance.wakeReadyCheck = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      instance.wakeReadyCheck = undefined;
    }
    if (!exited && !instance.draining) {
      log.warn(
        { function: instance.functionName, instance: instance.id },
        'instance was not ready in time; stopped it',
      );
      instance.tail += `\nnot ready within ${READY_TIMEOUT_MS} ms`;
      killGroup(instance, 'SIGKILL');
    }
  }

  function killGroup(instance: Instance, signal: NodeJS.Signals) {
    try {
      process.kill(-instance.child.pid!, signal);
    } catch {
      // already gone
    }
  }

  /** Takes an instance out of rotation; the shim finishes its in-flight call on SIGTERM and exits. */
  async function drain(instance: Instance, timeoutSeconds: number): Promise<void> {
    if (instance.draining) return;
    instance.draining = true;
    log.info(
      { function: instance.functionName, revision: instance.revision, instance: instance.id },
      'draining instance',
    );
    if (!stopping) {
      await registry.putInstance({
        id: instance.id,
        function: instance.functionName,
        revision: instance.revision,
        url: instance.url,
        ready: instance.ready,
        draining: true,
      });
    }
    killGroup(instance, 'SIGTERM');
    const timer = setTimeout(() => killGroup(instance, 'SIGKILL'), (timeoutSeconds + 5) * 1000);
    void instance.exited.then(() => {
      clearTimeout(timer);
      // Runtime processes the shim left in its group go too.
      killGroup(instance, 'SIGKILL');
    });
  }

  async function putRoute(name: string, state: FunctionState, route: Omit<FunctionRoute, 'lastModified'>) {
    const json = JSON.stringify(route);
    if (state.route === json) return;
    state.route = json;
    state.lastModified = new Date().toISOString();
    await registry.putRoute({ ...route, lastModified: state.lastModified });
  }

  async function reconcile(key: string): Promise<ReconcileResult> {
    const name = nameOf(key);
    const entry = manifests.functions.get(name);
    const state = stateOf(name);
    if (!entry) {
      for (const instance of state.instances.values()) await drain(instance, 30);
      await registry.removeFunction(name);
      await logs.remove(name);
      if (state.serving) log.info({ function: name }, 'removed function');
      states.delete(name);
      return {};
    }
    const spec = entry.resource.spec;
    const revision = revisionHash(spec);
    const problem = unsupported(spec);
    if (problem) {
      for (const instance of state.instances.values()) await drain(instance, spec.timeoutSeconds);
      state.serving = undefined;
      await putRoute(name, state, { name, revision, spec, state: 'Failed', stateReason: problem });
      return {};
    }
    let codeDir: string;
    try {
      codeDir = await ensureCode(name, revision, spec);
    } catch (error) {
      if (!(error instanceof ArchiveError)) throw error;
      // A wrong hash or a bad zip stays wrong: Failed until the spec changes, no retry loop.
      log.error({ function: name, revision }, error.message);
      await putRoute(name, state, { name, revision, spec, state: 'Failed', stateReason: error.message });
      return {};
    }
    const now = Date.now();
    state.pool = nextPoolSize(state.pool, totalDemand(await registry.demand(name), now), spec, now);
    const desired = state.pool.size;

    const all = [...state.instances.values()];
    const current = all.filter((i) => i.revision === revision && !i.draining);
    const readyCurrent = current.filter((i) => i.ready).length;
    const failing = state.failedRevision === revision && state.failedStarts >= FAILED_AFTER;
    if (current.length < desired && now >= state.nextStartAt) {
      for (let n = current.length; n < desired; n++) await startInstance(name, revision, spec, codeDir);
    } else if (current.length > desired) {
      // Instances still starting go first: they serve no one yet.
      const excess = current
        .sort((a, b) => Number(a.ready) - Number(b.ready))
        .slice(0, current.length - desired);
      for (const instance of excess) await drain(instance, spec.timeoutSeconds);
    }

    // The route moves to a new revision once it can serve (or nothing needs serving), so that
    // calls never wait on a rollout; then the old revision's instances drain.
    const servingReady = all.some((i) => i.revision === state.serving?.revision && i.ready && !i.draining);
    if (
      !state.serving ||
      state.serving.revision === revision ||
      readyCurrent > 0 ||
      desired === 0 ||
      !servingReady
    ) {
      if (state.serving && state.serving.revision !== revision) {
        log.info({ function: name, from: state.serving.revision, to: revision }, 'rolled to a new revision');
      }
      state.serving = { revision, spec };
    }
    for (const instance of all) {
      if (
        instance.revision !== state.serving.revision &&
        instance.revision !== revision &&
        !instance.draining
      ) {
        await drain(instance, spec.timeoutSeconds);
      }
    }
    if (failing && readyCurrent === 0) {
      await putRoute(name, state, {
        name,
        revision,
        spec,
        state: 'Failed',
        stateReason: `instances of revision ${revision} exited before they were ready: ${state.lastFailure ?? ''}`,
      });
    } else {
      await putRoute(name, state, {
        name,
        revision: state.serving.revision,
        spec: state.serving.spec,
        state: 'Active',
      });
    }
    const waitForStart = current.length < desired ? Math.max(10, state.nextStartAt - now) : pollIntervalMs;
    return { requeueAfterMs: Math.min(pollIntervalMs, waitForStart) };
  }

  // Instances of a previous controller died with it (they were its children): forget them, and
  // look at every function it registered, so that ones whose manifest is gone get removed.
  for (const name of await registry.names()) {
    await registry.clearInstances(name);
    queue.add(keyOf(name));
  }
  await scan();
  subscriber.on('message', (channel: string, name: string) => {
    if (channel === RedisKeys.demandChannel && manifests.functions.has(name)) queue.add(keyOf(name));
  });
  await subscriber.subscribe(RedisKeys.demandChannel);

  let scanTimer: NodeJS.Timeout | undefined;
  const scanSoon = () => {
    clearTimeout(scanTimer);
    scanTimer = setTimeout(() => void scan(), 50);
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(options.functionsDir, scanSoon);
    watcher.on('error', () => undefined);
  } catch {
    // Some file systems cannot be watched; the interval scan still sees every change.
  }
  const scanInterval = setInterval(() => void scan(), scanIntervalMs);

  const workers = runWorkers(queue, reconcile, {
    workers: 4,
    onError: (key, error) => log.error({ err: error, function: nameOf(key) }, 'reconcile failed; will retry'),
  });
  // Started means every function found has a route (Pending at least): a gateway started after
  // this (hearth dev) then holds a first call for the cold start instead of answering 404.
  const routesDeadline = Date.now() + 10_000;
  for (const name of manifests.functions.keys()) {
    while (!(await registry.route(name)) && Date.now() < routesDeadline) await sleep(20);
  }
  log.info({ dir: options.functionsDir, functions: manifests.functions.size }, 'process controller started');

  return {
    stateDir,
    problems: () => manifests.problems,
    rescan: scan,
    async stop() {
      stopping = true;
      watcher?.close();
      clearInterval(scanInterval);
      clearTimeout(scanTimer);
      queue.shutDown();
      await workers;
      await scanning;
      await eventSources.close();
      const instances = [...states.values()].flatMap((s) => [...s.instances.values()]);
      await Promise.all(instances.map((i) => drain(i, 5)));
      await Promise.all(instances.map((i) => i.exited));
      for (const name of states.keys()) await registry.clearInstances(name).catch(() => undefined);
      subscriber.disconnect();
      await redis.quit().catch(() => undefined);
      if (ownsStateDir) await rm(stateDir, { recursive: true, force: true });
      log.info('process controller stopped');
    },
  };
}
