// The Helm chart, checked the way a user's tools see it: helm lint, helm template, promtool on the
// alert rules and on every dashboard query, and (when the tier-1 binaries are built) a server-side
// dry run of every rendered object against a real kube-apiserver, plus install and upgrade keeping
// the generated API key.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { KUBE_MISSING, kubeBinaries, startControlPlane, type ControlPlane } from '../harness/kube.js';
import {
  CHART,
  CI_VALUES,
  dashboardQueries,
  HELM_MISSING,
  helmBinary,
  KUBE_VERSION,
  must,
  PROMTOOL_MISSING,
  promtoolBinary,
  renderChart,
  ruleGroups,
  run,
  type Manifest,
} from './tools.js';

const helm = helmBinary();
const promtool = promtoolBinary();
const MONITORING = ['--api-versions', 'monitoring.coreos.com/v1'];

const byKind = (ms: Manifest[], kind: string) => ms.filter((m) => m.kind === kind);
const named = (ms: Manifest[], kind: string, suffix: string) => {
  const found = ms.find((m) => m.kind === kind && m.metadata.name.endsWith(suffix));
  assert.ok(
    found,
    `no ${kind} named *${suffix} in ${ms.map((m) => `${m.kind}/${m.metadata.name}`).join(', ')}`,
  );
  return found;
};
const env = (m: Manifest) =>
  Object.fromEntries(
    (m.spec.template.spec.containers[0].env as { name: string; value?: string; valueFrom?: unknown }[]).map(
      (e) => [e.name, e.value ?? e.valueFrom],
    ),
  );

describe('the Helm chart', { skip: helm ? false : HELM_MISSING }, () => {
  let tmp: string;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'hearth-chart-'));
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  test('helm lint --strict passes with the default values and with the CI values', async () => {
    for (const extra of [[], ['-f', CI_VALUES]]) {
      const result = await run(helm!, ['lint', '--strict', CHART, '--kube-version', KUBE_VERSION, ...extra]);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.match(result.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  test('the values schema refuses a wrong value and names it', async () => {
    const result = await run(helm!, ['template', 'x', CHART, '--set', 'gateway.replicas=0']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /gateway\.replicas|replicas/);
    const noRedis = await run(helm!, ['template', 'x', CHART, '--set', 'redis.enabled=false']);
    assert.notEqual(noRedis.code, 0);
    assert.match(noRedis.stderr, /redis\.external\.url/);
  });

  test('renders every component with security on by default', async () => {
    const ms = await renderChart(MONITORING);
    const controller = named(ms, 'Deployment', '-controller');
    assert.equal(controller.spec.replicas, 2);
    assert.equal(env(controller).HEARTH_BACKEND, 'kubernetes');
    const gateway = named(ms, 'Deployment', '-gateway');
    assert.deepEqual(gateway.spec.template.spec.containers[0].args, ['--role=http']);
    assert.equal(env(gateway).HEARTH_AUTH, 'true');
    assert.deepEqual(env(gateway).HEARTH_API_KEYS, {
      secretKeyRef: { name: 'hearth-api-key', key: 'api-key' },
    });
    const worker = named(ms, 'Deployment', '-worker');
    assert.deepEqual(worker.spec.template.spec.containers[0].args, ['--role=worker']);
    assert.match(worker.spec.template.spec.containers[0].image, /^localhost\/hearth-gateway:/);
    for (const d of [controller, gateway, worker]) {
      const pod = d.spec.template.spec;
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.equal(pod.containers[0].securityContext.readOnlyRootFilesystem, true);
      assert.deepEqual(pod.containers[0].securityContext.capabilities.drop, ['ALL']);
    }
    // The generated key is a real key, in a Secret kept on uninstall.
    const key = named(ms, 'Secret', '-api-key');
    assert.match(Buffer.from(key.data!['api-key']!, 'base64').toString(), /^hk_[A-Za-z0-9]{40}$/);
    assert.equal(key.metadata.annotations?.['helm.sh/resource-policy'], 'keep');

    const redis = named(ms, 'StatefulSet', '-redis');
    const args = redis.spec.template.spec.containers[0].args.join(' ');
    assert.match(args, /--appendonly yes/);
    assert.match(args, /--maxmemory-policy noeviction/);
    assert.match(args, /--requirepass \$\(REDIS_PASSWORD\)/);
    assert.equal(redis.spec.volumeClaimTemplates[0].spec.resources.requests.storage, '2Gi');
    assert.match(
      String(env(gateway).HEARTH_REDIS_URL),
      /^redis:\/\/:\$\(HEARTH_REDIS_PASSWORD\)@hearth-redis\.hearth-system\.svc:6379$/,
    );

    assert.equal(named(ms, 'PodDisruptionBudget', '-gateway').spec.minAvailable, 1);
    assert.equal(named(ms, 'HorizontalPodAutoscaler', '-gateway').spec.minReplicas, 2);
    assert.equal(gateway.spec.replicas, undefined, 'the HPA owns the gateway replica count');

    // Function pods take traffic only from the gateway and the workers; Redis only from Hearth.
    const fnPolicy = named(ms, 'NetworkPolicy', '-functions');
    assert.deepEqual(fnPolicy.spec.podSelector, {
      matchExpressions: [{ key: 'hearth.dev/function', operator: 'Exists' }],
    });
    const from = fnPolicy.spec.ingress[0].from;
    assert.equal(from.length, 1);
    assert.deepEqual(from[0].podSelector.matchExpressions[1], {
      key: 'app.kubernetes.io/component',
      operator: 'In',
      values: ['gateway', 'worker'],
    });
    const redisPolicy = named(ms, 'NetworkPolicy', '-redis');
    assert.deepEqual(redisPolicy.spec.ingress[0].from[0].podSelector.matchExpressions[1].values, [
      'controller',
      'gateway',
      'worker',
    ]);

    // Least privilege: the controller writes Function status and finalizers, never Function specs.
    const role = named(ms, 'ClusterRole', '-controller');
    const rules = (role as unknown as { rules: unknown }).rules as {
      apiGroups: string[];
      resources: string[];
      verbs: string[];
    }[];
    const verbs = (group: string, resource: string) =>
      rules
        .filter((r) => r.apiGroups.includes(group) && r.resources.includes(resource))
        .flatMap((r) => r.verbs);
    // patch for the cleanup finalizer only (metadata.finalizers); no create, update or delete.
    assert.deepEqual(verbs('hearth.dev', 'functions'), ['get', 'list', 'watch', 'patch']);
    assert.deepEqual(verbs('hearth.dev', 'functions/status'), ['get', 'update', 'patch']);
    assert.deepEqual(verbs('hearth.dev', 'functions/finalizers'), ['update']);
    assert.deepEqual(verbs('hearth.dev', 'eventsourcemappings'), ['get', 'list', 'watch']);
    assert.deepEqual(verbs('hearth.dev', 'eventsourcemappings/status'), ['get', 'update', 'patch']);
    assert.deepEqual(verbs('discovery.k8s.io', 'endpointslices'), ['get', 'list', 'watch']);
    assert.equal(verbs('', 'secrets').length, 0, 'the controller reads no Secrets');
    assert.deepEqual(
      (named(ms, 'Role', '-controller-leader') as unknown as { rules: { resources: string[] }[] }).rules[0]!
        .resources,
      ['leases'],
    );

    // The controller's event source mappings invoke through the gateway with the generated key,
    // and its metrics are scraped like the gateway's and the workers'.
    assert.equal(env(controller).HEARTH_GATEWAY_URL, 'http://hearth-gateway.hearth-system.svc:8080');
    assert.deepEqual(env(controller).HEARTH_GATEWAY_TOKEN, {
      secretKeyRef: { name: 'hearth-api-key', key: 'api-key' },
    });
    assert.equal(env(controller).HEARTH_METRICS_PORT, '9091');
    assert.deepEqual(controller.spec.template.spec.containers[0].ports, [
      { name: 'metrics', containerPort: 9091 },
    ]);
    assert.equal(named(ms, 'Service', '-controller-metrics').spec.ports[0].targetPort, 'metrics');
    assert.deepEqual(
      byKind(ms, 'ServiceMonitor').map((m) => m.metadata.name),
      ['hearth-gateway', 'hearth-worker', 'hearth-controller'],
    );
    named(ms, 'PrometheusRule', 'hearth');
    const dashboard = named(ms, 'ConfigMap', '-dashboard');
    assert.equal(dashboard.metadata.labels?.grafana_dashboard, '1');
    assert.ok(JSON.parse(dashboard.data!['hearth-functions.json']!).panels.length >= 10);
  });

  test('with the code store the gateway serves the management API and may write Functions', async () => {
    const rulesOf = (m: Manifest) =>
      (m as unknown as { rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] }).rules;
    const verbs = (m: Manifest, resource: string) =>
      rulesOf(m)
        .filter((r) => r.apiGroups.includes('hearth.dev') && r.resources.includes(resource))
        .flatMap((r) => r.verbs)
        .sort();

    // Off by default: read-only gateway, no management settings.
    const plain = await renderChart();
    const plainGateway = named(plain, 'Deployment', '-gateway');
    assert.equal(env(plainGateway).HEARTH_MANAGEMENT_BACKEND, undefined);
    assert.deepEqual(verbs(named(plain, 'ClusterRole', '-gateway'), 'functions'), ['get', 'list', 'watch']);
    assert.deepEqual(verbs(named(plain, 'ClusterRole', '-gateway'), 'eventsourcemappings'), []);
    assert.ok(!plain.some((m) => m.kind === 'PersistentVolumeClaim'));

    const ms = await renderChart([
      '--set',
      'codeStore.enabled=true',
      '--set',
      'functions.namespaces={team-a,team-b}',
    ]);
    const gateway = named(ms, 'Deployment', '-gateway');
    assert.equal(env(gateway).HEARTH_MANAGEMENT_BACKEND, 'kubernetes');
    assert.equal(env(gateway).HEARTH_NAMESPACE, 'team-a', 'Functions go to the first functions namespace');
    assert.equal(env(gateway).HEARTH_CODE_STORE_DIR, '/var/lib/hearth/code');
    assert.equal(env(gateway).HEARTH_CODE_BASE_URL, 'http://hearth-gateway.hearth-system.svc:8080');
    const pod = gateway.spec.template.spec;
    assert.deepEqual(pod.containers[0].volumeMounts, [
      { name: 'code-store', mountPath: '/var/lib/hearth/code' },
    ]);
    assert.equal(
      pod.volumes[0].persistentVolumeClaim.claimName,
      named(ms, 'PersistentVolumeClaim', '-code').metadata.name,
    );
    const role = named(ms, 'ClusterRole', '-gateway');
    const readWrite = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
    assert.deepEqual(verbs(role, 'functions'), readWrite);
    assert.deepEqual(verbs(role, 'eventsourcemappings'), readWrite);
    assert.deepEqual(verbs(role, 'functions/status'), [], "status stays the controller's");
    // `hearth logs`: the gateway reads pods and their logs in each functions namespace, nowhere else.
    const logRoles = ms.filter((m) => m.kind === 'Role' && m.metadata.name.endsWith('-function-logs'));
    assert.deepEqual(logRoles.map((m) => m.metadata.namespace).sort(), ['team-a', 'team-b']);
    assert.deepEqual(
      rulesOf(logRoles[0]!).map((r) => [r.resources, r.verbs]),
      [
        [['pods'], ['get', 'list']],
        [['pods/log'], ['get']],
      ],
    );
    const logBindings = ms.filter(
      (m) => m.kind === 'RoleBinding' && m.metadata.name.endsWith('-function-logs'),
    );
    assert.equal(logBindings.length, 2);
    assert.ok(
      !plain.some((m) => m.metadata.name.endsWith('-function-logs')),
      'no log access without the management API',
    );
    // The controller hands its own image to function pods to fetch archive code, and reads their
    // pods to learn why a fetch failed; it needs no code store of its own.
    const controller = named(ms, 'Deployment', '-controller');
    assert.equal(
      env(controller).HEARTH_CODE_FETCHER_IMAGE,
      controller.spec.template.spec.containers[0].image,
    );
    assert.equal(controller.spec.template.spec.volumes, undefined);
    const controllerRules = rulesOf(named(ms, 'ClusterRole', '-controller'));
    assert.deepEqual(
      controllerRules.filter((r) => r.resources.includes('pods')).flatMap((r) => r.verbs),
      ['get', 'list'],
    );

    // Without cluster DNS the code URL is the Service's address, expanded by the kubelet.
    const noDns = await renderChart(['--set', 'codeStore.enabled=true', '--set', 'clusterDns=false']);
    const noDnsEnv = env(named(noDns, 'Deployment', '-gateway'));
    assert.equal(noDnsEnv.HEARTH_CODE_BASE_URL, 'http://$(HEARTH_GATEWAY_SERVICE_HOST):8080');
    assert.equal(noDnsEnv.HEARTH_NAMESPACE, 'hearth-system');

    // The management API can be left off while the code store stays.
    const off = await renderChart([
      '--set',
      'codeStore.enabled=true',
      '--set',
      'gateway.management.enabled=false',
    ]);
    assert.equal(env(named(off, 'Deployment', '-gateway')).HEARTH_MANAGEMENT_BACKEND, undefined);
    assert.deepEqual(verbs(named(off, 'ClusterRole', '-gateway'), 'functions'), ['get', 'list', 'watch']);
  });

  test('without the Prometheus Operator, no ServiceMonitor or PrometheusRule is rendered', async () => {
    const ms = await renderChart();
    assert.equal(byKind(ms, 'ServiceMonitor').length, 0);
    assert.equal(byKind(ms, 'PrometheusRule').length, 0);
  });

  test('an external Redis replaces the StatefulSet, its Secret and its NetworkPolicy', async () => {
    const ms = await renderChart([
      '--set',
      'redis.enabled=false',
      '--set',
      'redis.external.url=redis://cache.example:6379',
    ]);
    assert.equal(byKind(ms, 'StatefulSet').length, 0);
    assert.equal(env(named(ms, 'Deployment', '-gateway')).HEARTH_REDIS_URL, 'redis://cache.example:6379');
    assert.ok(!ms.some((m) => m.kind === 'NetworkPolicy' && m.metadata.name.endsWith('-redis')));
  });

  test(
    'promtool check rules passes on the PrometheusRule',
    { skip: promtool ? false : PROMTOOL_MISSING },
    async () => {
      const rules = ruleGroups(await renderChart(MONITORING));
      const alerts = rules.groups.flatMap((g) => g.rules.map((r) => r.alert));
      for (const name of [
        'HearthDeadLetterQueueGrowing',
        'HearthFunctionThrottled',
        'HearthFunctionErrorRatio',
        'HearthAsyncQueueBacklog',
        'HearthPoolNotReady',
      ]) {
        assert.ok(alerts.includes(name), `alert ${name} missing`);
      }
      const file = join(tmp, 'rules.yaml');
      await writeFile(file, stringify(rules));
      const result = await run(promtool!, ['check', 'rules', file]);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.match(result.stdout, /SUCCESS: 5 rules found/);
    },
  );

  test(
    'every dashboard query is valid PromQL over metrics Hearth exports',
    { skip: promtool ? false : PROMTOOL_MISSING },
    async () => {
      const queries = dashboardQueries();
      assert.ok(queries.length >= 15);
      // promtool parses each query as the expression of a recording rule.
      const file = join(tmp, 'dashboard-rules.yaml');
      const rules = queries.map((q, i) => ({ record: `hearth:dashboard:q${i}`, expr: q.expr }));
      await writeFile(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
      const result = await run(promtool!, ['check', 'rules', file]);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      for (const q of queries) assert.match(q.expr, /hearth_[a-z_]+/, `${q.panel}: ${q.expr}`);
    },
  );

  describe('against a real kube-apiserver', { skip: kubeBinaries() ? false : KUBE_MISSING }, () => {
    let cp: ControlPlane;
    before(async () => {
      cp = await startControlPlane({ crds: [join(CHART, 'crds/function.yaml')] });
    });
    after(async () => {
      await cp?.stop();
    });

    test('every rendered object passes a server-side dry run', async () => {
      await cp.kubectl(['create', 'namespace', 'hearth-system']);
      for (const extra of [[], ['-f', CI_VALUES]]) {
        // The Prometheus Operator's kinds need its CRDs, which this apiserver does not have.
        const ms = (await renderChart([...MONITORING, ...extra])).filter(
          (m) => !m.apiVersion.startsWith('monitoring.coreos.com/'),
        );
        const out = await cp.kubectl(
          ['apply', '--dry-run=server', '-f', '-'],
          ms.map((m) => JSON.stringify(m)).join('\n'),
        );
        assert.equal(out.trim().split('\n').length, ms.length, out);
      }
    });

    test('helm install generates the API key and an upgrade keeps it', async () => {
      const env = { ...process.env, KUBECONFIG: cp.kubeconfig };
      const install = ['install', 'h', CHART, '--namespace', 'keys', '--create-namespace', '-f', CI_VALUES];
      await must(helm!, install, { env });
      const key = async () =>
        (
          await cp.kubectl([
            '-n',
            'keys',
            'get',
            'secret',
            'h-hearth-api-key',
            '-o',
            'jsonpath={.data.api-key}',
          ])
        ).trim();
      const first = await key();
      assert.match(Buffer.from(first, 'base64').toString(), /^hk_/);
      await must(
        helm!,
        ['upgrade', 'h', CHART, '--namespace', 'keys', '-f', CI_VALUES, '--set', 'gateway.logLevel=debug'],
        { env },
      );
      assert.equal(await key(), first, 'the upgrade generated a new key');
      const notes = await must(helm!, ['get', 'notes', 'h', '--namespace', 'keys'], { env });
      assert.match(notes, /kubectl -n keys get secret h-hearth-api-key/);
    });
  });
});
