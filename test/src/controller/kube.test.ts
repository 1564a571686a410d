import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoordinationV1Api, KubeConfig, type V1Deployment } from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { RedisKeys, type FunctionResource, type FunctionRoute, type InstanceEndpoint } from '@hearth/api';
import { startKubeController, type KubeController } from '@hearth/controller/kube-backend';
import { CLEANUP_FINALIZER } from '@hearth/controller/cleanup';
import { LeaderElector } from '@hearth/controller/leader';
import { KUBE_MISSING, kubeBinaries, startControlPlane, type ControlPlane } from '../harness/kube.js';
import { startRedis, type RedisServer } from '../harness/redis.js';

const CRD = fileURLToPath(new URL('../../../charts/hearth/crds/function.yaml', import.meta.url));
const quiet = pino({ level: process.env.HEARTH_TEST_LOGS === '1' ? 'debug' : 'silent' });

function manifest(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'hearth.dev/v1alpha1', kind: 'Function', metadata: { name }, spec });
}
const code = (body: string) => ({
  inline: { files: { 'index.mjs': `export const handler = async (e) => ${body}` } },
});

describe(
  'the Kubernetes backend against a real kube-apiserver',
  { skip: kubeBinaries() ? false : KUBE_MISSING },
  () => {
    let cp: ControlPlane;
    let controller: KubeController;
    let namespaces = 0;

    let redis: RedisServer;
    let redisClient: Redis;

    before(async () => {
      // Redis is where gateways report demand: the pools follow it on Kubernetes too.
      redis = await startRedis();
      redisClient = new Redis(redis.url);
      cp = await startControlPlane({ controllerManager: true, crds: [CRD] });
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromFile(cp.kubeconfig);
      controller = await startKubeController({
        kubeConfig,
        logger: quiet,
        leaseSeconds: 5,
        identity: 'test-controller',
        redisUrl: redis.url,
        // Short enough to watch a deleted Function's keys go, long enough to see them kept first.
        deletedRetentionSeconds: 4,
        cleanupSweepMs: 250,
      });
    });
    after(async () => {
      await controller?.stop();
      await cp?.stop();
      redisClient?.disconnect();
      await redis?.stop();
    });

    async function namespace(): Promise<string> {
      const ns = `t${++namespaces}-${Date.now().toString(36)}`;
      await cp.kubectl(['create', 'namespace', ns]);
      return ns;
    }
    /** Creates or updates the Function `name` in `ns` with `spec`, as `kubectl apply` does. */
    const applyFunction = (ns: string, name: string, spec: Record<string, unknown>) =>
      cp.kubectl(['-n', ns, 'apply', '-f', '-'], manifest(name, spec));
    const getJson = async <T>(ns: string, ...what: string[]) =>
      JSON.parse(await cp.kubectl(['-n', ns, 'get', ...what, '-o', 'json'])) as T;
    const fnOf = (ns: string, name: string) => getJson<FunctionResource>(ns, 'fn', name);
    type Named = {
      metadata: {
        name: string;
        labels?: Record<string, string>;
        ownerReferences?: { uid: string; kind: string }[];
      };
    };
    const deployments = async (ns: string) =>
      (await getJson<{ items: (Named & { spec: { replicas: number } })[] }>(ns, 'deployments')).items;

    async function until<T>(
      what: string,
      check: () => Promise<T | undefined | false>,
      timeoutMs = 30_000,
    ): Promise<T> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const value = await check().catch(() => undefined);
        if (value) return value;
        if (Date.now() > deadline)
          throw new Error(`timed out waiting for ${what}\n${cp.logs().slice(-2000)}`);
        await sleep(100);
      }
    }

    test('kubectl rejects bad Functions, naming the field', async () => {
      const ns = await namespace();
      const cases: [Record<string, unknown>, RegExp][] = [
        [{ runtime: 'nodejs20.x', memory: '64Gi', code: code('e') }, /spec\.memory/],
        [{ runtime: 'nodejs20.x', ephemeralStorage: '100Mi', code: code('e') }, /spec\.ephemeralStorage/],
        [{ runtime: 'nodejs20.x', code: { ...code('e'), image: 'repo/fn:1' } }, /spec\.code/],
        [{ runtime: 'nodejs20.x', code: {} }, /spec\.code/],
        [{ runtime: 'java8', code: code('e') }, /spec\.runtime/],
        [{ runtime: 'nodejs20.x', timeoutSeconds: 901, code: code('e') }, /spec\.timeoutSeconds/],
        [
          { runtime: 'nodejs20.x', scaling: { minWarm: 5, maxInstances: 2 }, code: code('e') },
          /spec\.scaling/,
        ],
        [{ runtime: 'nodejs20.x', code: code('e'), memroy: '256Mi' }, /memroy/],
        [{ runtime: 'nodejs20.x', code: { image: 'repo/fn:1' } }, /spec\.runtime must be provided\.al2023/],
        [{ runtime: 'nodejs20.x', code: code('e'), imageConfig: { command: ['x'] } }, /spec\.imageConfig/],
        [
          { runtime: 'nodejs20.x', code: code('e'), async: { maxRetryAttempts: 3 } },
          /spec\.async\.maxRetryAttempts/,
        ],
        [
          { runtime: 'nodejs20.x', code: code('e'), async: { maxEventAgeSeconds: 59 } },
          /spec\.async\.maxEventAgeSeconds/,
        ],
        [
          { runtime: 'nodejs20.x', code: code('e'), env: [{ name: '1BAD', value: 'x' }] },
          /spec\.env\[0\]\.name/,
        ],
        [{ runtime: 'nodejs20.x', code: code('e'), handler: 'index handler' }, /spec\.handler/],
        [
          { runtime: 'python3.11', code: code('e'), concurrency: { perInstance: 4, perRuntime: 2 } },
          /spec\.concurrency\.perRuntime must be 1/,
        ],
        [
          { runtime: 'nodejs20.x', code: code('e'), concurrency: { perInstance: 65 } },
          /spec\.concurrency\.perInstance needs ceil\(perInstance \/ perRuntime\) runtime processes/,
        ],
      ];
      for (const [spec, field] of cases) {
        await assert.rejects(applyFunction(ns, 'bad', spec), field, JSON.stringify(spec));
      }
      await assert.rejects(cp.kubectl(['-n', ns, 'get', 'fn', 'bad']), /NotFound/);
      // 256 calls at once in four runtimes of 64 is fine.
      await applyFunction(ns, 'wide', {
        runtime: 'nodejs20.x',
        code: code('e'),
        concurrency: { perInstance: 256, perRuntime: 64 },
      });
    });

    test('a Function gets a Deployment, a Service and code per revision, owned by it, and a status', async () => {
      const ns = await namespace();
      await applyFunction(ns, 'echo', {
        runtime: 'nodejs20.x',
        memory: '256Mi',
        code: code('e'),
        scaling: { minWarm: 2 },
      });
      const fn = await until('a status for generation 1', async () => {
        const f = await fnOf(ns, 'echo');
        return (
          f.status?.observedGeneration === 1 && f.status.conditions?.some((c) => c.type === 'PoolReady') && f
        );
      });
      assert.equal(fn.spec.timeoutSeconds, 3, 'the CRD filled in the defaults');
      const revision = fn.status!.revision!;
      assert.match(revision, /^[0-9a-f]{10}$/);
      const conditions = Object.fromEntries(fn.status!.conditions!.map((c) => [c.type, c]));
      assert.equal(conditions.CodeReady!.status, 'True');
      // No kubelet in tier 1: the pods never become ready, which the status says.
      assert.equal(conditions.PoolReady!.status, 'False');
      assert.match(conditions.PoolReady!.message!, /0\/2 instances ready/);
      assert.equal(conditions.Ready!.status, 'False');
      assert.equal(conditions.Ready!.observedGeneration, 1);
      assert.deepEqual(fn.status!.instances, { desired: 2, ready: 0, busy: 0 });

      const [deployment] = await deployments(ns);
      assert.equal(deployment!.metadata.name, `echo-${revision}`);
      assert.equal(deployment!.spec.replicas, 2);
      for (const kind of ['deployment', 'service', 'configmap']) {
        const object = await getJson<Named>(ns, kind, `echo-${revision}`);
        assert.equal(
          object.metadata.ownerReferences?.[0]?.uid,
          fn.metadata.uid,
          `${kind} owned by the Function`,
        );
      }
      await until('the ReplicaSet made its pods', async () => {
        const pods = await getJson<{ items: Named[] }>(ns, 'pods');
        return pods.items.length === 2;
      });
      const table = await cp.kubectl(['-n', ns, 'get', 'fn']);
      assert.match(table, /NAME\s+READY\s+RUNTIME\s+INSTANCES\s+REVISION\s+AGE/);
      assert.match(table, new RegExp(`echo\\s+False\\s+nodejs20.x\\s+0\\s+${revision}`));
      const events = await cp.kubectl([
        '-n',
        ns,
        'get',
        'events',
        '--field-selector',
        'involvedObject.name=echo',
      ]);
      assert.match(events, /RevisionCreated/);
    });

    test('a code change makes a new revision; the old one stays until the new one serves', async () => {
      const ns = await namespace();
      const apply = (body: string, scaling: Record<string, number>) =>
        applyFunction(ns, 'roll', { runtime: 'nodejs20.x', code: code(body), scaling });
      await apply('1', { minWarm: 1 });
      const first = await until('revision 1', async () => (await fnOf(ns, 'roll')).status?.revision);
      await apply('2', { minWarm: 1 });
      const second = await until('revision 2', async () => {
        const f = await fnOf(ns, 'roll');
        return f.status?.observedGeneration === 2 && f.status.revision !== first && f.status.revision;
      });
      await until('both Deployments', async () => (await deployments(ns)).length === 2);
      await sleep(1000);
      assert.deepEqual(
        (await deployments(ns)).map((d) => d.metadata.labels?.['hearth.dev/revision']).sort(),
        [first, second].sort(),
        'with no ready instance of the new revision the old one keeps serving',
      );
      // Scaled to zero (idleSeconds 0: at once), nothing needs serving: the old revisions go.
      await apply('3', { minWarm: 0, idleSeconds: 0 });
      const third = await until('revision 3', async () => {
        const f = await fnOf(ns, 'roll');
        return f.status?.observedGeneration === 3 && f.status.revision !== second && f.status.revision;
      });
      await until('only revision 3 left', async () => {
        const list = await deployments(ns);
        return list.length === 1 && list[0]!.metadata.labels?.['hearth.dev/revision'] === third;
      });
      const f = await fnOf(ns, 'roll');
      assert.equal(
        f.status!.conditions!.find((c) => c.type === 'Ready')!.status,
        'True',
        'scaled to zero is Ready',
      );
      const services = await getJson<{ items: Named[] }>(ns, 'services');
      assert.deepEqual(
        services.items.map((s) => s.metadata.name),
        [`roll-${third}`],
      );
    });

    test('an image function runs its own image behind the shim; a missing code source is recorded in status, and its appearing noticed', async () => {
      const ns = await namespace();
      await applyFunction(ns, 'img', {
        runtime: 'provided.al2023',
        handler: 'app.handler',
        code: { image: 'repo/fn:1' },
        scaling: { minWarm: 1 },
      });
      const pod = await until('a Deployment for the image', async () => {
        const found = await getJson<{ items: V1Deployment[] }>(ns, 'deployments');
        return found.items[0]?.spec?.template.spec;
      });
      assert.equal(pod.containers[0]!.image, 'repo/fn:1');
      assert.equal(pod.initContainers?.[0]?.name, 'install-shim');
      const env = Object.fromEntries((pod.containers[0]!.env ?? []).map((e) => [e.name, e.value]));
      assert.equal(env.HEARTH_RUNTIME_COMMAND, '["/lambda-entrypoint.sh","app.handler"]');
      await applyFunction(ns, 'cm', { runtime: 'nodejs20.x', code: { configMap: { name: 'cm-code' } } });
      const missing = await until('CodeReady False', async () => {
        const f = await fnOf(ns, 'cm');
        return f.status?.conditions?.find((c) => c.type === 'CodeReady' && c.status === 'False');
      });
      assert.equal(missing.reason, 'CodeNotFound');
      assert.match(missing.message!, /cm-code/);
      await cp.kubectl([
        '-n',
        ns,
        'create',
        'configmap',
        'cm-code',
        '--from-literal=index.mjs=export const handler = async () => 1',
      ]);
      await until(
        'CodeReady True once the ConfigMap exists',
        async () => {
          const f = await fnOf(ns, 'cm');
          return f.status?.conditions?.some((c) => c.type === 'CodeReady' && c.status === 'True');
        },
        20_000,
      );
      assert.equal((await deployments(ns)).filter((d) => d.metadata.name.startsWith('cm-')).length, 1);
    });

    test("the Deployment follows the gateways' demand: up at once, down to zero after idleSeconds", async () => {
      const ns = await namespace();
      await applyFunction(ns, 'busy', {
        runtime: 'nodejs20.x',
        code: code('e'),
        scaling: { minWarm: 0, idleSeconds: 2 },
        concurrency: { perInstance: 2 },
      });
      const replicas = async () => (await deployments(ns))[0]?.spec.replicas;
      await until('a Deployment at zero', async () => (await replicas()) === 0);
      let demand = { inFlight: 2, waiting: 3 };
      const report = () =>
        redisClient.hset(
          RedisKeys.demand(`busy.${ns}`),
          'gw-1',
          JSON.stringify({ gateway: 'gw-1', ...demand, at: Date.now() }),
        );
      const reporter = setInterval(() => void report(), 500);
      try {
        await report();
        await until('ceil(5 / 2) = 3 replicas', async () => (await replicas()) === 3, 10_000);
        assert.equal((await fnOf(ns, 'busy')).status?.instances?.desired, 3);
        demand = { inFlight: 0, waiting: 0 };
        await report();
        await sleep(1000);
        assert.equal(await replicas(), 3, 'no scale-down inside idleSeconds');
        await until('back to zero', async () => (await replicas()) === 0, 10_000);
      } finally {
        clearInterval(reporter);
      }
    });

    test('deleting a Function lets Kubernetes collect everything made for it', async () => {
      const ns = await namespace();
      await applyFunction(ns, 'gone', {
        runtime: 'python3.11',
        handler: 'app.handler',
        code: { inline: { files: { 'app.py': 'def handler(e, c): return e' } } },
      });
      await until('a Deployment', async () => (await deployments(ns)).length === 1);
      assert.deepEqual((await fnOf(ns, 'gone')).metadata.finalizers, [CLEANUP_FINALIZER]);
      // Returns once the Function is gone: the controller released its finalizer.
      await cp.kubectl(['-n', ns, 'delete', 'fn', 'gone', '--wait=true']);
      await until('nothing left', async () => {
        const rest = await getJson<{ items: Named[] }>(
          ns,
          'deployments,services,configmaps',
          '-l',
          'hearth.dev/function=gone',
        );
        return rest.items.length === 0;
      });
    });

    test("a deleted Function's Redis keys outlive it by the retention, unless a Function of its name is back", async () => {
      const ns = await namespace();
      const spec = { runtime: 'nodejs20.x', code: code('e') };
      const keysOf = (name: string) => [
        RedisKeys.dlq(name),
        RedisKeys.logs(name),
        `${RedisKeys.asyncQueuePrefix(name)}meta`,
      ];
      const seedKeys = async (name: string) => {
        await redisClient.xadd(RedisKeys.dlq(name), '*', 'event', '{}');
        await redisClient.xadd(RedisKeys.logs(name), '*', 'line', 'hello');
        await redisClient.hset(`${RedisKeys.asyncQueuePrefix(name)}meta`, 'opts', '{}');
        await redisClient.sadd(RedisKeys.asyncFunctions, name);
      };
      const createAndDelete = async (resourceName: string) => {
        const name = `${resourceName}.${ns}`;
        await applyFunction(ns, resourceName, spec);
        await until('the finalizer', async () =>
          ((await fnOf(ns, resourceName)).metadata.finalizers as string[] | undefined)?.includes(
            CLEANUP_FINALIZER,
          ),
        );
        await until('the route', async () => redisClient.exists(RedisKeys.function(name)));
        await seedKeys(name);
        await cp.kubectl(['-n', ns, 'delete', 'fn', resourceName, '--wait=true']);
        assert.equal(await redisClient.exists(RedisKeys.function(name)), 0, 'the route is gone');
        const purgeAt = Number(await redisClient.zscore(RedisKeys.deleted, name));
        assert.ok(purgeAt > Date.now() && purgeAt <= Date.now() + 4000, `a tombstone for ${purgeAt}`);
        assert.equal(await redisClient.exists(...keysOf(name)), 3, 'the keys are kept meanwhile');
        return name;
      };

      const swept = await createAndDelete('swept');
      await until(
        'the keys swept after the retention',
        async () =>
          (await redisClient.exists(...keysOf(swept))) === 0 &&
          (await redisClient.zscore(RedisKeys.deleted, swept)) === null &&
          !(await redisClient.sismember(RedisKeys.asyncFunctions, swept)),
        15_000,
      );

      const back = await createAndDelete('back');
      await applyFunction(ns, 'back', spec);
      await until('the route again', async () => redisClient.exists(RedisKeys.function(back)));
      await until(
        'the tombstone dropped',
        async () => (await redisClient.zscore(RedisKeys.deleted, back)) === null,
        15_000,
      );
      assert.equal(await redisClient.exists(...keysOf(back)), 3, "the keys are the new Function's");
    });

    test('the registry in Redis gets the route and the ready endpoints; a deleted Function leaves it', async () => {
      const ns = await namespace();
      const resourceName = `routed-${Date.now().toString(36)}`;
      // Outside the default namespace a Function is invoked as name.namespace.
      const name = `${resourceName}.${ns}`;
      await applyFunction(ns, resourceName, { runtime: 'nodejs20.x', code: code('e') });
      const fn = await until('a revision in status', async () => {
        const f = await fnOf(ns, resourceName);
        return f.status?.revision ? f : undefined;
      });
      const revision = fn.status!.revision!;
      const route = await until('the route in Redis', async () => {
        const json = await redisClient.get(RedisKeys.function(name));
        return json ? (JSON.parse(json) as FunctionRoute) : undefined;
      });
      assert.equal(route.name, name);
      assert.equal(route.revision, revision);
      assert.equal(route.state, 'Active'); // nothing warm needed: the gateways' demand brings one
      assert.equal(route.spec.runtime, 'nodejs20.x');
      assert.equal(route.spec.timeoutSeconds, 3, 'the spec has its defaults');
      assert.ok(!Number.isNaN(Date.parse(route.lastModified)));

      // Tier 1 has no kubelet: the EndpointSlice the EndpointSlice controller would write, by hand.
      const services = await getJson<{ items: Named[] }>(
        ns,
        'services',
        '-l',
        `hearth.dev/function=${resourceName}`,
      );
      assert.equal(services.items.length, 1);
      const service = services.items[0]!.metadata.name;
      const slice = {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: `${service}-abcde`, labels: { 'kubernetes.io/service-name': service } },
        addressType: 'IPv4',
        ports: [{ name: 'invoke', port: 8080, protocol: 'TCP' }],
        endpoints: [
          {
            addresses: ['10.1.2.3'],
            conditions: { ready: true, serving: true, terminating: false },
            targetRef: { kind: 'Pod', name: `${service}-pod-1`, namespace: ns },
          },
          {
            addresses: ['10.1.2.4'],
            conditions: { ready: false, serving: false, terminating: false },
          },
        ],
      };
      await cp.kubectl(['-n', ns, 'apply', '-f', '-'], JSON.stringify(slice));
      const instances = await until('the instances in Redis', async () => {
        const hash = await redisClient.hgetall(RedisKeys.instances(name));
        return Object.keys(hash).length === 2 && hash;
      });
      assert.deepEqual(JSON.parse(instances[`${service}-pod-1`]!), {
        id: `${service}-pod-1`,
        function: name,
        revision,
        url: 'http://10.1.2.3:8080',
        ready: true,
        draining: false,
      });
      assert.deepEqual(JSON.parse(instances['10.1.2.4']!), {
        id: '10.1.2.4',
        function: name,
        revision,
        url: 'http://10.1.2.4:8080',
        ready: false,
        draining: false,
      });
      assert.ok(await redisClient.sismember(RedisKeys.functions, name));

      // The endpoint going away (the pod ending) is noticed too.
      slice.endpoints = slice.endpoints.slice(0, 1);
      await cp.kubectl(['-n', ns, 'apply', '-f', '-'], JSON.stringify(slice));
      await until('one instance left', async () => (await redisClient.hlen(RedisKeys.instances(name))) === 1);

      await cp.kubectl(['-n', ns, 'delete', 'fn', resourceName, '--wait=true']);
      await until('the registry forgets it', async () => {
        const [route, count, member] = await Promise.all([
          redisClient.exists(RedisKeys.function(name)),
          redisClient.exists(RedisKeys.instances(name)),
          redisClient.sismember(RedisKeys.functions, name),
        ]);
        return route === 0 && count === 0 && member === 0;
      });
    });

    test('same-named Functions in two namespaces keep apart in the registry: name and name.namespace', async () => {
      const other = await namespace();
      const apply = (ns: string, body: string) =>
        applyFunction(ns, 'twin', { runtime: 'nodejs20.x', code: code(body) });
      await apply('default', '"in default"');
      await apply(other, `"in ${other}"`);
      const revisionOf = (ns: string) =>
        until(`a revision in ${ns}`, async () => (await fnOf(ns, 'twin')).status?.revision);
      const routeOf = async (name: string) => {
        const json = await redisClient.get(RedisKeys.function(name));
        return json ? (JSON.parse(json) as FunctionRoute) : undefined;
      };
      const revisions = { home: await revisionOf('default'), other: await revisionOf(other) };
      assert.notEqual(revisions.home, revisions.other, 'their code differs');
      await until('both routes, each with its own revision', async () => {
        const [home, away] = [await routeOf('twin'), await routeOf(`twin.${other}`)];
        return home?.revision === revisions.home && away?.revision === revisions.other;
      });

      // One ready endpoint each (tier 1 has no kubelet to make them): neither overwrites the other.
      const endpointIn = async (ns: string, revision: string, address: string) => {
        const service = (
          await getJson<{ items: Named[] }>(ns, 'services', '-l', `hearth.dev/revision=${revision}`)
        ).items[0]!.metadata.name;
        const slice = {
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: { name: `${service}-twin`, labels: { 'kubernetes.io/service-name': service } },
          addressType: 'IPv4',
          ports: [{ name: 'invoke', port: 8080, protocol: 'TCP' }],
          endpoints: [{ addresses: [address], conditions: { ready: true } }],
        };
        await cp.kubectl(['-n', ns, 'apply', '-f', '-'], JSON.stringify(slice));
      };
      await endpointIn('default', revisions.home, '10.9.0.1');
      await endpointIn(other, revisions.other, '10.9.0.2');
      const urls = async (name: string) =>
        Object.values(await redisClient.hgetall(RedisKeys.instances(name))).map((json) => {
          const instance = JSON.parse(json) as InstanceEndpoint;
          return `${instance.function} ${instance.url}`;
        });
      await until('each function with its own instance', async () => {
        const [home, away] = [await urls('twin'), await urls(`twin.${other}`)];
        return (
          home.join() === 'twin http://10.9.0.1:8080' && away.join() === `twin.${other} http://10.9.0.2:8080`
        );
      });

      // Deleting one leaves the other as it was.
      await cp.kubectl(['-n', other, 'delete', 'fn', 'twin', '--wait=true']);
      await until(
        'the other namespace forgotten',
        async () => (await routeOf(`twin.${other}`)) === undefined,
      );
      assert.equal((await routeOf('twin'))?.revision, revisions.home);
      assert.deepEqual(await urls('twin'), ['twin http://10.9.0.1:8080']);
      await cp.kubectl(['-n', 'default', 'delete', 'fn', 'twin', '--wait=true']);
      await until('the default one forgotten', async () => (await routeOf('twin')) === undefined);
    });

    test('one leader at a time; a stepping-down leader hands over at once', async () => {
      const ns = await namespace();
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromFile(cp.kubeconfig);
      const api = kubeConfig.makeApiClient(CoordinationV1Api);
      const leading = new Set<string>();
      const electors = ['a', 'b'].map((identity) => {
        const elector = new LeaderElector({
          api,
          namespace: ns,
          name: 'test-lease',
          identity,
          leaseSeconds: 5,
          retryMs: 200,
          logger: quiet,
        });
        elector.run(
          () => leading.add(identity),
          () => leading.delete(identity),
        );
        return { identity, elector };
      });
      try {
        await until('a leader', async () => leading.size === 1);
        await sleep(1000);
        assert.equal(leading.size, 1, 'never two leaders');
        const leader = electors.find((e) => leading.has(e.identity))!;
        const other = electors.find((e) => e !== leader)!;
        const handover = Date.now();
        await leader.elector.stop();
        leading.delete(leader.identity);
        await until('the other took over', async () => leading.has(other.identity), 4000);
        assert.ok(Date.now() - handover < 4000, 'well before the 5 s lease would have expired');
      } finally {
        for (const { elector } of electors) await elector.stop();
      }
    });
  },
);
