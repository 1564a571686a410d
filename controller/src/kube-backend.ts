import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import {
  ApiException,
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  KubeConfig,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  type Informer,
  type KubernetesObject,
  type ObjectCache,
  type V1Deployment,
  type V1EndpointSlice,
} from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import {
  API_GROUP,
  API_VERSION,
  RedisKeys,
  validateFunctionSpec,
  type EventSourceMappingStatus,
  type FunctionResource,
  type FunctionStatus,
} from '@hearth/api';
import {
  CLEANUP_FINALIZER,
  DEFAULT_DELETED_RETENTION_SECONDS,
  hasCleanupFinalizer,
  sweepDeletedFunctions,
} from './cleanup.js';
import { failedStatus, poolStatus } from './conditions.js';
import { EVENT_SOURCE_MAPPING_PLURAL, FUNCTION_PLURAL } from './crd.js';
import { createMappingSupervisor, type EventSourceSettings } from './event-sources/start.js';
import {
  checkMappingSpec,
  type DesiredMapping,
  type MappingStatusWriter,
} from './event-sources/supervisor.js';
import {
  codeFetchFailure,
  imagePullFailure,
  defaultKubeOptions,
  desiredCodeConfigMap,
  desiredDeployment,
  desiredService,
  isApplied,
  Labels,
  MANAGER,
  revisionObjectName,
  withAppliedHash,
  type KubeBackendOptions,
} from './kube-objects.js';
import { LeaderElector } from './leader.js';
import { nextPoolSize, totalDemand, type PoolState } from './pool.js';
import { runWorkers, WorkQueue, type ReconcileResult } from './queue.js';
import { WatchBackoff } from './watch-backoff.js';
import {
  DEFAULT_FUNCTION_NAMESPACE,
  registryInstances,
  registryName,
  revisionInstances,
  SERVICE_NAME_LABEL,
  servingRevision,
  writeRoute,
} from './kube-registry.js';
import { RegistryWriter } from './registry.js';
import { canonicalJson, revisionHash } from './revision.js';
import { reuseConnections } from './kube-connections.js';

export interface KubeControllerOptions {
  kubeConfig?: KubeConfig;
  logger?: Logger;
  /** Redis where gateways report demand; without it every pool stays at minWarm. */
  redisUrl?: string;
  objects?: KubeBackendOptions;
  /** This replica's name in the leader Lease; hostname plus a random suffix by default. */
  identity?: string;
  leaseNamespace?: string;
  /**
   * Functions in this namespace are called by their plain name at the gateway; those of other
   * namespaces as `name.namespace` (kube-registry.ts, registryName). `default` by default.
   */
  defaultNamespace?: string;
  leaseName?: string;
  leaseSeconds?: number;
  /** The gateway's public base URL, for status.url. */
  gatewayUrl?: string;
  /** How often every Function is listed afresh and reconciled, whatever the watches said. */
  resyncMs?: number;
  /** How often a function's demand is read again while Redis is configured. */
  pollMs?: number;
  /**
   * EventSourceMappings: how they invoke functions and where they count. They run on the leader
   * only, and need Redis (schedule ticks, the push mappings the gateways serve).
   */
  eventSources?: EventSourceSettings;
  /** How often every mapping is reconciled, whatever the watches said. */
  mappingResyncMs?: number;
  /**
   * How long a deleted Function's Redis keys (dead letters, logs, async queue) outlive it; 7 days
   * by default. Needs Redis: only then do Functions get the cleanup finalizer.
   */
  deletedRetentionSeconds?: number;
  /** How often the leader removes the keys whose retention has passed; once a minute by default. */
  cleanupSweepMs?: number;
}

/** Status keys of a mapping, so that a merge patch clears the ones a new status leaves out. */
const MAPPING_STATUS_KEYS: (keyof EventSourceMappingStatus)[] = [
  'observedGeneration',
  'state',
  'stateReason',
  'lastProcessedPosition',
  'lastProcessingResult',
  'lastError',
  'lastModified',
];

/** A mapping resource from the informer's cache as the supervisor wants it. */
export function desiredMappingOf(
  object: KubernetesObject & { spec?: unknown },
  functionExists: boolean,
  defaultNamespace: string,
): DesiredMapping {
  const name = object.metadata!.name!;
  const namespace = object.metadata!.namespace ?? 'default';
  const checked = checkMappingSpec(object.spec);
  return {
    id: `${namespace}/${name}`,
    name,
    namespace,
    uid: object.metadata!.uid ?? `${namespace}/${name}`,
    generation: object.metadata!.generation,
    // A mapping names a Function of its own namespace; it invokes it as the gateway knows it.
    ...(checked.spec
      ? {
          spec: {
            ...checked.spec,
            functionName: registryName(namespace, checked.spec.functionName, defaultNamespace),
          },
        }
      : { problems: checked.problems }),
    functionExists,
  };
}

export interface KubeController {
  readonly identity: string;
  isLeader(): boolean;
  stop(): Promise<void>;
}

type Cache = Informer<KubernetesObject> & ObjectCache<KubernetesObject>;

/** What the leader's reconciles read instead of asking the API server. */
interface LeaderCaches {
  functions: ObjectCache<KubernetesObject>;
  deployments: ObjectCache<KubernetesObject>;
  /** With the registry only: the gateways find instances there. */
  endpointSlices?: ObjectCache<KubernetesObject>;
  /** Functions whose objects are applied on their next reconcile even when the cache shows them current. */
  reapply: Set<string>;
}

/**
 * Reconciles at a time. A reconcile is a few API calls one after another and spends nearly all
 * its time waiting for the API server, so with 4 workers 1,000 new Functions were bound by that
 * latency while the API server still had CPU to spare.
 */
const RECONCILE_WORKERS = 16;

/** How often a revision whose pods wait for their archive code is looked at again. */
const CODE_FETCH_POLL_MS = 2000;

const apply = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
const statusOf = (error: unknown) => (error instanceof ApiException ? error.code : undefined);

async function ignoreNotFound<T>(promise: Promise<T>): Promise<T | undefined> {
  try {
    return await promise;
  } catch (error) {
    if (statusOf(error) === 404) return undefined;
    throw error;
  }
}

/**
 * The Kubernetes backend: Functions (the CRD) into a Deployment + Service (+ code ConfigMap) per
 * revision, owned by the Function so that Kubernetes collects them; status written back. Only
 * the Lease holder reconciles. With Redis, a finalizer lets a deleted Function's route go from
 * the registry and its other keys be swept after a retention period (cleanup.ts).
 */
export async function startKubeController(options: KubeControllerOptions = {}): Promise<KubeController> {
  const log = options.logger ?? pino({ name: 'hearth-controller' });
  const kc = options.kubeConfig ?? new KubeConfig();
  if (!options.kubeConfig) kc.loadFromDefault();
  reuseConnections(kc);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const objects = options.objects ?? defaultKubeOptions;
  const identity = options.identity ?? `${hostname()}-${randomBytes(3).toString('hex')}`;
  const resyncMs = options.resyncMs ?? 300_000;
  const pollMs = options.pollMs ?? 1000;
  const deletedRetentionMs = (options.deletedRetentionSeconds ?? DEFAULT_DELETED_RETENTION_SECONDS) * 1000;
  const redis = options.redisUrl ? new Redis(options.redisUrl) : undefined;
  let lastRedisError = 0;
  redis?.on('error', (error: Error) => {
    // Reconnects by itself; pools keep their size meanwhile (reading demand fails the reconcile).
    if (Date.now() - lastRedisError < 30_000) return;
    lastRedisError = Date.now();
    log.warn({ err: error }, 'lost the connection to Redis; reconnecting');
  });
  const registry = redis ? new RegistryWriter(redis) : undefined;
  const defaultNamespace = options.defaultNamespace ?? DEFAULT_FUNCTION_NAMESPACE;
  /** A listed Function's registry name: the one rule for the caches, the resync and the sweep. */
  const routeNameOf = (o: KubernetesObject) =>
    registryName(o.metadata?.namespace ?? 'default', o.metadata?.name ?? '', defaultNamespace);
  const pools = new Map<string, PoolState>();
  const lastEvent = new Map<string, string>();
  /** `namespace/service` -> `namespace/function`, for EndpointSlices that carry no labels of ours. */
  const serviceOwners = new Map<string, string>();
  const fnRef = { group: API_GROUP, version: API_VERSION, plural: FUNCTION_PLURAL };
  const mappingRef = { group: API_GROUP, version: API_VERSION, plural: EVENT_SOURCE_MAPPING_PLURAL };
  const mappingStatus: MappingStatusWriter = {
    async write(mapping, status) {
      const body = Object.fromEntries(MAPPING_STATUS_KEYS.map((key) => [key, status[key] ?? null]));
      await ignoreNotFound(
        custom.patchNamespacedCustomObjectStatus(
          { ...mappingRef, namespace: mapping.namespace, name: mapping.name, body: { status: body } },
          mergePatch,
        ),
      );
    },
    // Status lives on the resource and goes with it.
    prune: () => Promise.resolve(),
  };

  async function event(fn: FunctionResource, type: 'Normal' | 'Warning', reason: string, message: string) {
    const key = `${fn.metadata.namespace}/${fn.metadata.name}`;
    // The same news once, not on every pass of a level-triggered loop.
    if (lastEvent.get(key) === `${reason}:${message}`) return;
    lastEvent.set(key, `${reason}:${message}`);
    const now = new Date();
    try {
      await core.createNamespacedEvent({
        namespace: fn.metadata.namespace!,
        body: {
          metadata: { generateName: `${fn.metadata.name}.` },
          involvedObject: {
            apiVersion: fn.apiVersion,
            kind: 'Function',
            name: fn.metadata.name,
            namespace: fn.metadata.namespace,
            uid: fn.metadata.uid,
          },
          type,
          reason,
          message,
          source: { component: MANAGER },
          reportingComponent: MANAGER,
          reportingInstance: identity,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    } catch (error) {
      log.warn({ err: error, function: key }, 'could not record an event');
    }
  }

  async function writeStatus(fn: FunctionResource, status: FunctionStatus) {
    // Key order differs between what we build and what the server returns: compare canonically.
    if (canonicalJson(status) === canonicalJson(fn.status ?? {})) return;
    await custom.patchNamespacedCustomObjectStatus(
      { ...fnRef, namespace: fn.metadata.namespace!, name: fn.metadata.name, body: { status } },
      mergePatch,
    );
    fn.status = status;
  }

  /**
   * Server-side apply of only this finalizer: the controller owns that one entry of
   * metadata.finalizers and leaves everyone else's alone.
   */
  async function ensureFinalizer(fn: FunctionResource) {
    if (hasCleanupFinalizer(fn.metadata as KubernetesObject['metadata'])) return;
    const { name, namespace } = fn.metadata;
    await custom.patchNamespacedCustomObject(
      {
        ...fnRef,
        namespace: namespace!,
        name,
        body: {
          apiVersion: fn.apiVersion,
          kind: 'Function',
          metadata: { name, namespace, finalizers: [CLEANUP_FINALIZER] },
        },
        fieldManager: MANAGER,
        force: true,
      },
      apply,
    );
  }

  /** Lets Kubernetes collect the Function; the test fails the patch if the list moved meanwhile. */
  async function releaseFinalizer(fn: KubernetesObject) {
    const index = fn.metadata?.finalizers?.indexOf(CLEANUP_FINALIZER) ?? -1;
    if (index < 0) return;
    const path = `/metadata/finalizers/${index}`;
    await ignoreNotFound(
      custom.patchNamespacedCustomObject(
        {
          ...fnRef,
          namespace: fn.metadata!.namespace!,
          name: fn.metadata!.name!,
          body: [
            { op: 'test', path, value: CLEANUP_FINALIZER },
            { op: 'remove', path },
          ],
        },
        jsonPatch,
      ),
    );
  }

  async function deleteRevision(namespace: string, name: string) {
    // Background propagation: the pods get SIGTERM and finish their calls in flight.
    await ignoreNotFound(
      apps.deleteNamespacedDeployment({ namespace, name, propagationPolicy: 'Background' }),
    );
    await ignoreNotFound(core.deleteNamespacedService({ namespace, name }));
    await ignoreNotFound(core.deleteNamespacedConfigMap({ namespace, name }));
  }

  /** In-flight plus waiting calls, 0 without Redis, undefined when Redis does not answer soon. */
  async function readDemand(name: string): Promise<number | undefined> {
    if (!registry) return 0;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), 1000)));
    try {
      const reports = await Promise.race([registry.demand(name), timeout]);
      return reports && totalDemand(reports, Date.now());
    } catch {
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /** A function that cannot serve: its route says why and it has no instances to call. */
  async function registerFailed(
    name: string,
    revision: string,
    spec: FunctionResource['spec'],
    reason: string,
  ) {
    if (!registry) return;
    await writeRoute(
      registry,
      { name, revision, spec, state: 'Failed', stateReason: reason },
      await registry.route(name),
    );
    await registry.syncInstances(name, []);
  }

  async function reconcile(key: string, caches: LeaderCaches): Promise<ReconcileResult | void> {
    const [namespace, name] = key.split('/') as [string, string];
    const routeName = registryName(namespace, name, defaultNamespace);
    // From the informer's cache, which the workers wait for: a copy, since the reconcile edits it.
    const cached = caches.functions.get(name, namespace);
    const fn = cached && (structuredClone(cached) as unknown as FunctionResource);
    if (!fn || cached.metadata?.deletionTimestamp) {
      // Its Deployments, Services and ConfigMaps are owned by it: the garbage collector takes them.
      pools.delete(key);
      lastEvent.delete(key);
      caches.reapply.delete(key);
      for (const [service, owner] of serviceOwners) if (owner === key) serviceOwners.delete(service);
      // Invocations get 404 from now on; the keys it leaves are swept after the retention.
      if (registry) await registry.retireFunction(routeName, Date.now() + deletedRetentionMs);
      if (cached) await releaseFinalizer(cached);
      return;
    }
    if (registry) await ensureFinalizer(fn);
    const generation = fn.metadata.generation;
    const now = () => new Date().toISOString();

    const validated = validateFunctionSpec(fn.spec);
    if (!validated.spec) {
      const message = validated.problems.map((p) => `${p.path} ${p.message}`).join('; ');
      await writeStatus(
        fn,
        failedStatus(
          fn.status,
          generation,
          { condition: 'Ready', reason: 'InvalidSpec', message },
          undefined,
          now(),
        ),
      );
      await event(fn, 'Warning', 'InvalidSpec', message);
      // Without a valid spec there is nothing to route by: the gateways forget the function.
      if (registry) await registry.removeFunction(routeName);
      return; // terminal: only a new spec helps
    }
    fn.spec = validated.spec;
    const revision = revisionHash(fn.spec);
    if (fn.spec.code.configMap) {
      const codeName = fn.spec.code.configMap.name;
      if (!(await ignoreNotFound(core.readNamespacedConfigMap({ namespace, name: codeName })))) {
        const failure = {
          condition: 'CodeReady' as const,
          reason: 'CodeNotFound',
          message: `ConfigMap ${codeName} (spec.code.configMap.name) was not found`,
        };
        await writeStatus(fn, failedStatus(fn.status, generation, failure, revision, now()));
        await event(fn, 'Warning', failure.reason, failure.message);
        await registerFailed(routeName, revision, fn.spec, `${failure.reason}: ${failure.message}`);
        return { requeueAfterMs: 10_000 };
      }
    }

    const demand = await readDemand(routeName);
    // Without word from Redis the pool keeps its size: an outage there must not stop rollouts.
    const pool =
      demand === undefined
        ? (pools.get(key) ?? nextPoolSize(undefined, 0, fn.spec, Date.now()))
        : nextPoolSize(pools.get(key), demand, fn.spec, Date.now());
    pools.set(key, pool);
    const objectName = revisionObjectName(name, revision);
    const existing = (caches.deployments.list(namespace) as V1Deployment[]).filter(
      (d) => d.metadata?.labels?.[Labels.function] === name,
    );
    const current = existing.find((d) => d.metadata?.name === objectName);
    const isNew = current === undefined;

    const desired = withAppliedHash(desiredDeployment(fn, revision, pool.size, objects));
    let deployment = current;
    // The Deployment is applied last and carries the hash of what was applied: when the cache
    // shows it, the ConfigMap and Service of the same pass are there too. The periodic resync
    // applies everything again (reapply), which mends anything deleted or edited meanwhile.
    const reapply = caches.reapply.delete(key);
    if (reapply || !isApplied(current, desired)) {
      const configMap = desiredCodeConfigMap(fn, revision);
      if (configMap) {
        // The revision's code never changes under its name, so Kubernetes may treat it as immutable.
        configMap.immutable = true;
        await core.patchNamespacedConfigMap(
          { namespace, name: objectName, body: configMap, fieldManager: MANAGER, force: true },
          apply,
        );
      }
      await core.patchNamespacedService(
        {
          namespace,
          name: objectName,
          body: desiredService(fn, revision),
          fieldManager: MANAGER,
          force: true,
        },
        apply,
      );
      deployment = await apps.patchNamespacedDeployment(
        { namespace, name: objectName, body: desired, fieldManager: MANAGER, force: true },
        apply,
      );
    }
    if (isNew)
      await event(
        fn,
        'Normal',
        'RevisionCreated',
        `Created Deployment ${objectName} for revision ${revision}`,
      );

    // Old revisions go once the new one serves (or nothing needs serving): never a gap in service.
    const ready = deployment?.status?.readyReplicas ?? 0;
    let old = existing.filter((d: V1Deployment) => d.metadata?.labels?.[Labels.revision] !== revision);
    if (old.length > 0 && (ready > 0 || pool.size === 0)) {
      for (const d of old) await deleteRevision(namespace, d.metadata!.name!);
      const revisions = old.map((d) => d.metadata?.labels?.[Labels.revision]).join(', ');
      await event(
        fn,
        'Normal',
        'RolledOut',
        `Rolled out revision ${revision}; deleted revision ${revisions}`,
      );
      old = [];
    }
    log.debug({ function: key, revision, desired: pool.size, ready, oldRevisions: old.length }, 'reconciled');
    // A pod short of ready may be stuck fetching its archive or pulling its image: the kubelet says why.
    const findCodeFailure = fn.spec.code.archive
      ? codeFetchFailure
      : fn.spec.code.image
        ? imagePullFailure
        : undefined;
    const codeFailure =
      findCodeFailure && ready < pool.size
        ? findCodeFailure(
            (
              await core.listNamespacedPod({
                namespace,
                labelSelector: `${Labels.function}=${name},${Labels.revision}=${revision}`,
              })
            ).items,
          )
        : undefined;
    const busy = Math.min(demand ?? 0, ready * fn.spec.concurrency.perInstance);
    const url = options.gatewayUrl
      ? `${options.gatewayUrl.replace(/\/$/, '')}/function/${routeName}`
      : undefined;
    const status = codeFailure
      ? failedStatus(fn.status, generation, { condition: 'CodeReady', ...codeFailure }, revision, now())
      : poolStatus(
          fn.status,
          generation,
          { revision, desired: pool.size, ready, busy, oldRevisions: old.length },
          now(),
          url,
        );
    await writeStatus(fn, status);
    if (codeFailure) await event(fn, 'Warning', codeFailure.reason, codeFailure.message);
    if (registry) {
      const revisions = [revision, ...old.map((d) => d.metadata!.labels![Labels.revision]!)];
      for (const r of revisions) serviceOwners.set(`${namespace}/${revisionObjectName(name, r)}`, key);
      const slices = (caches.endpointSlices?.list(namespace) ?? []) as V1EndpointSlice[];
      const instances = revisionInstances(slices, name, routeName, revisions);
      const serving = servingRevision(revision, instances);
      const servingReady = (instances.get(serving) ?? []).some((i) => i.ready && !i.draining);
      const previous = await registry.route(routeName);
      // Active once it can take calls: an instance is ready, or none is needed (the gateways'
      // demand brings one), or it was active before and is only scaling or rolling.
      const active = servingReady || pool.size === 0 || previous?.state === 'Active';
      const readyCondition = status.conditions?.find((c) => c.type === 'Ready');
      await writeRoute(
        registry,
        {
          name: routeName,
          revision: serving,
          spec: fn.spec,
          // Nothing serves and the code cannot be fetched: callers learn why instead of waiting.
          state: active ? 'Active' : codeFailure ? 'Failed' : 'Pending',
          ...(active ? {} : { stateReason: readyCondition?.message ?? 'waiting for instances' }),
        },
        previous,
      );
      await registry.syncInstances(routeName, registryInstances(instances, serving, revision));
    }
    // No watch announces a code fetcher's exit or an image pull's failure: while a revision waits
    // for its code, look at its pods again soon.
    if (findCodeFailure && ready < pool.size) return { requeueAfterMs: CODE_FETCH_POLL_MS };
    // Demand changes come from followDemand, which queues the function when its size should change.
    return { requeueAfterMs: resyncMs };
  }

  /**
   * The leader's event source mappings: an informer on them, and on each change (and every
   * `mappingResyncMs`) the supervisor is given the whole cache, level-triggered.
   */
  function runMappings(
    functions: Informer<KubernetesObject> & ObjectCache<KubernetesObject>,
  ): { stop(): Promise<void> } | undefined {
    if (!options.eventSources) return undefined;
    if (!redis || !options.redisUrl) {
      log.warn('EventSourceMappings need HEARTH_REDIS_URL; they are not run');
      return undefined;
    }
    const { supervisor, close } = createMappingSupervisor({
      settings: options.eventSources,
      redis,
      redisUrl: options.redisUrl,
      statusWriter: mappingStatus,
      logger: log,
    });
    const informer = makeInformer<KubernetesObject>(
      kc,
      `/apis/${API_GROUP}/${API_VERSION}/${EVENT_SOURCE_MAPPING_PLURAL}`,
      () => custom.listClusterCustomObject(mappingRef),
    );
    let stopped = false;
    // Until the first list arrived the cache is not the whole truth: pruning then would unpublish
    // the push mappings of every mapping not yet seen.
    let synced = false;
    let timer: NodeJS.Timeout | undefined;
    const reconcileSoon = () => {
      if (stopped || !synced || timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        const desired = new Map<string, DesiredMapping>();
        for (const object of informer.list()) {
          const mapping = object as KubernetesObject & { spec?: { functionName?: string } };
          const fn = mapping.spec?.functionName;
          const exists = fn !== undefined && functions.get(fn, mapping.metadata?.namespace) !== undefined;
          const wanted = desiredMappingOf(mapping, exists, defaultNamespace);
          desired.set(wanted.id, wanted);
        }
        supervisor
          .reconcile(desired)
          .catch((error: unknown) =>
            log.error({ err: error }, 'reconciling event source mappings failed; will retry'),
          );
      }, 100);
    };
    for (const event of ['add', 'update', 'delete'] as const) informer.on(event, reconcileSoon);
    // A function coming or going shows in its mappings' status.
    for (const event of ['add', 'delete'] as const) functions.on(event, reconcileSoon);
    const backoff = WatchBackoff.following(informer);
    const start = () => {
      informer.start().then(
        () => {
          synced = true;
          reconcileSoon();
        },
        () => undefined,
      );
    };
    informer.on('error', (error: unknown) => {
      if (stopped) return;
      const delay = backoff.next();
      log.warn({ err: error, watch: 'eventsourcemappings', retryInMs: delay }, 'watch failed; restarting');
      setTimeout(() => !stopped && start(), delay).unref();
    });
    start();
    const resync = setInterval(reconcileSoon, options.mappingResyncMs ?? 30_000);
    return {
      async stop() {
        stopped = true;
        clearInterval(resync);
        clearTimeout(timer);
        await informer.stop();
        await close();
      },
    };
  }

  /**
   * Scaling without a full reconcile per function per second: every `pollMs` read all functions'
   * demand (one round of pipelined reads), advance each pool's state, and queue only the functions
   * whose size changes. A gateway's "calls are waiting" message queues its function at once.
   */
  function followDemand(
    redis: Redis,
    registry: RegistryWriter,
    functions: ObjectCache<KubernetesObject>,
    queue: WorkQueue,
  ): { stop(): Promise<void> } {
    /** Route name -> work-queue key, as of the last poll. */
    const keysByRoute = new Map<string, string>();
    const subscriber = redis.duplicate();
    subscriber.on('error', () => undefined);
    subscriber.on('message', (_channel: string, routeName: string) => {
      const key = keysByRoute.get(routeName);
      if (key) return queue.add(key);
      // A function created since the last poll.
      for (const o of functions.list()) {
        const { name, namespace } = o.metadata ?? {};
        if (name && namespace && registryName(namespace, name, defaultNamespace) === routeName)
          queue.add(`${namespace}/${name}`);
      }
    });
    void subscriber.subscribe(RedisKeys.demandChannel).catch(() => undefined);
    /** Validated specs by function, kept while the resource is unchanged. */
    const specs = new Map<string, { resourceVersion?: string; spec?: FunctionResource['spec'] }>();
    let polling = false;
    const poll = async () => {
      if (polling) return; // a slow Redis: skip a beat rather than pile up reads
      polling = true;
      try {
        const now = Date.now();
        const functionsNow: { key: string; routeName: string; spec: FunctionResource['spec'] }[] = [];
        const present = new Set<string>();
        for (const o of functions.list()) {
          const name = o.metadata?.name;
          if (!name) continue;
          const key = `${o.metadata?.namespace}/${name}`;
          present.add(key);
          let known = specs.get(key);
          if (!known || known.resourceVersion !== o.metadata?.resourceVersion) {
            known = {
              resourceVersion: o.metadata?.resourceVersion,
              spec: validateFunctionSpec((o as FunctionResource).spec).spec,
            };
            specs.set(key, known);
          }
          if (known.spec)
            functionsNow.push({
              key,
              routeName: routeNameOf(o),
              spec: known.spec,
            });
        }
        for (const key of specs.keys()) if (!present.has(key)) specs.delete(key);
        keysByRoute.clear();
        for (const f of functionsNow) keysByRoute.set(f.routeName, f.key);
        const reports = await Promise.all(
          functionsNow.map((f) => registry.demand(f.routeName).catch(() => undefined)),
        );
        functionsNow.forEach((f, i) => {
          const found = reports[i];
          if (!found) return;
          const previous = pools.get(f.key);
          const next = nextPoolSize(previous, totalDemand(found, now), f.spec, now);
          pools.set(f.key, next);
          if (next.size !== previous?.size) queue.add(f.key);
        });
      } finally {
        polling = false;
      }
    };
    const timer = setInterval(() => void poll(), pollMs);
    return {
      async stop() {
        clearInterval(timer);
        subscriber.disconnect();
      },
    };
  }

  /**
   * The leader's sweep of deleted functions' keys, once the Function cache is complete (a function
   * not yet seen would be taken for gone) and then every `cleanupSweepMs`.
   */
  function sweepDeleted(
    redis: Redis,
    functions: ObjectCache<KubernetesObject>,
    cacheSynced: Promise<unknown>,
  ): { stop(): void } {
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const sweep = async () => {
      const present = new Set(functions.list().map(routeNameOf));
      try {
        const { purge } = await sweepDeletedFunctions(redis, Date.now(), (name) => present.has(name));
        if (purge.length > 0) log.info({ functions: purge }, 'removed the Redis keys of deleted functions');
      } catch (error) {
        log.warn({ err: error }, 'could not sweep the Redis keys of deleted functions; will retry');
      }
    };
    void cacheSynced.then(async () => {
      if (stopped) return;
      await sweep();
      if (!stopped) timer = setInterval(() => void sweep(), options.cleanupSweepMs ?? 60_000);
    });
    return {
      stop() {
        stopped = true;
        clearInterval(timer);
      },
    };
  }

  let term: { stop(): Promise<void> } | undefined;

  function lead() {
    const queue = new WorkQueue();
    const informers: { informer: Cache; start(): void; synced: Promise<void> }[] = [];
    let stopped = false;
    let markStopped!: () => void;
    const stopping = new Promise<void>((resolve) => (markStopped = resolve));
    const watchInformer = (
      informer: Cache,
      what: string,
      keyOf: (o: KubernetesObject) => string | undefined,
    ) => {
      const enqueue = (o: KubernetesObject) => {
        const key = keyOf(o);
        if (key) queue.add(key);
      };
      informer.on('add', enqueue);
      informer.on('update', enqueue);
      informer.on('delete', enqueue);
      const backoff = WatchBackoff.following(informer);
      let errors = 0;
      let markSynced!: () => void;
      const synced = new Promise<void>((resolve) => (markSynced = resolve));
      // start() resolves also when its list failed (reported as an error): synced is a start
      // during which no error came.
      const start = () => {
        const errorsBefore = errors;
        informer.start().then(
          () => errors === errorsBefore && markSynced(),
          () => undefined,
        );
      };
      // The client stops an informer on any error but 410: start it again, with backoff.
      informer.on('error', (error: unknown) => {
        errors++;
        if (stopped) return;
        const delay = backoff.next();
        log.warn({ err: error, watch: what, retryInMs: delay }, 'watch failed; restarting');
        setTimeout(() => !stopped && start(), delay).unref();
      });
      informers.push({ informer, start, synced });
    };
    const fnInformer = makeInformer<KubernetesObject>(
      kc,
      `/apis/${API_GROUP}/${API_VERSION}/${FUNCTION_PLURAL}`,
      () => custom.listClusterCustomObject(fnRef),
    );
    watchInformer(fnInformer, 'functions', (o) => `${o.metadata?.namespace}/${o.metadata?.name}`);
    const selector = `${Labels.managedBy}=${MANAGER}`;
    const deploymentInformer = makeInformer<KubernetesObject>(
      kc,
      '/apis/apps/v1/deployments',
      () => apps.listDeploymentForAllNamespaces({ labelSelector: selector }),
      selector,
    );
    watchInformer(deploymentInformer, 'deployments', (o) => {
      const fn = o.metadata?.labels?.[Labels.function];
      return fn ? `${o.metadata?.namespace}/${fn}` : undefined;
    });
    let sliceInformer: Cache | undefined;
    if (registry) {
      // The gateways find instances in the registry: a change of a Service's endpoints is news.
      const sliceSelector = SERVICE_NAME_LABEL;
      sliceInformer = makeInformer<KubernetesObject>(
        kc,
        '/apis/discovery.k8s.io/v1/endpointslices',
        () => discovery.listEndpointSliceForAllNamespaces({ labelSelector: sliceSelector }),
        sliceSelector,
      );
      watchInformer(sliceInformer, 'endpointslices', (o) => {
        const fn = o.metadata?.labels?.[Labels.function];
        if (fn) return `${o.metadata?.namespace}/${fn}`;
        const service = o.metadata?.labels?.[SERVICE_NAME_LABEL];
        return service ? serviceOwners.get(`${o.metadata?.namespace}/${service}`) : undefined;
      });
    }
    for (const { start } of informers) start();
    const mappings = runMappings(fnInformer);
    const caches: LeaderCaches = {
      functions: fnInformer,
      deployments: deploymentInformer,
      endpointSlices: sliceInformer,
      reapply: new Set(),
    };

    // A watch can hang without an error; a periodic full list catches anything it missed.
    const resync = async () => {
      try {
        const list = (await custom.listClusterCustomObject(fnRef)) as { items: KubernetesObject[] };
        for (const o of list.items) {
          const key = `${o.metadata?.namespace}/${o.metadata?.name}`;
          caches.reapply.add(key);
          queue.add(key);
        }
        // Functions deleted while no controller led are still in the registry: forget them.
        if (registry) {
          const present = new Set(list.items.map(routeNameOf));
          for (const name of await registry.names())
            if (!present.has(name)) await registry.retireFunction(name, Date.now() + deletedRetentionMs);
        }
      } catch (error) {
        log.warn({ err: error }, 'could not list Functions for a resync');
      }
    };
    const resyncTimer = setInterval(() => void resync(), resyncMs);
    const demand = registry && redis ? followDemand(redis, registry, fnInformer, queue) : undefined;
    if (registry) void resync();
    const functionsSynced = informers.find((i) => i.informer === fnInformer)!.synced;
    const cleanup = redis ? sweepDeleted(redis, fnInformer, functionsSynced) : undefined;
    // Reconciles read the caches: until every informer has listed once, a Function missing from
    // its cache might only not have been seen yet (and would be taken for deleted).
    const workers = Promise.race([Promise.all(informers.map((i) => i.synced)), stopping]).then(() =>
      runWorkers(queue, (key) => reconcile(key, caches), {
        workers: RECONCILE_WORKERS,
        onError: (key, error) => log.error({ err: error, function: key }, 'reconcile failed; will retry'),
      }),
    );
    return {
      async stop() {
        stopped = true;
        markStopped();
        clearInterval(resyncTimer);
        cleanup?.stop();
        await demand?.stop();
        queue.shutDown();
        for (const { informer } of informers) await informer.stop();
        await workers;
        await mappings?.stop();
      },
    };
  }

  const elector = new LeaderElector({
    api: kc.makeApiClient(CoordinationV1Api),
    namespace: options.leaseNamespace ?? process.env.HEARTH_NAMESPACE ?? 'default',
    name: options.leaseName ?? 'hearth-controller',
    identity,
    leaseSeconds: options.leaseSeconds ?? 15,
    retryMs: Math.max(500, ((options.leaseSeconds ?? 15) * 1000) / 5),
    logger: log,
  });
  elector.run(
    () => {
      term = lead();
    },
    () => {
      const ending = term;
      term = undefined;
      void ending?.stop();
    },
  );
  log.info({ identity }, 'kubernetes controller started; waiting for the lease');
  return {
    identity,
    isLeader: () => elector.isLeader,
    async stop() {
      await term?.stop();
      term = undefined;
      await elector.stop();
      redis?.disconnect();
      log.info('kubernetes controller stopped');
    },
  };
}
