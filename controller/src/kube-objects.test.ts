import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateFunctionSpec, type FunctionResource } from '@hearth/api';
import type { V1Pod } from '@kubernetes/client-node';
import {
  APPLIED_HASH_ANNOTATION,
  codeFetchFailure,
  codeFetchMessage,
  cpuMillis,
  defaultKubeOptions,
  desiredCodeConfigMap,
  desiredDeployment,
  desiredService,
  isApplied,
  Labels,
  revisionObjectName,
  imagePullFailure,
  withAppliedHash,
} from './kube-objects.js';
import { revisionHash } from './revision.js';

function fn(spec: Record<string, unknown>, name = 'echo'): FunctionResource {
  const result = validateFunctionSpec(spec);
  if (!result.spec) throw new Error(JSON.stringify(result.problems));
  return {
    apiVersion: 'hearth.dev/v1alpha1',
    kind: 'Function',
    metadata: { name, namespace: 'team-a', uid: '1234-uid', generation: 3 },
    spec: result.spec,
  };
}

const inline = {
  inline: { files: { 'index.mjs': 'export const handler = async (e) => e', 'lib/util.mjs': 'export {}' } },
};

test('the Deployment runs the shim locked down, sized from memory, /tmp capped, ready on /readyz', () => {
  const f = fn({
    runtime: 'nodejs20.x',
    code: inline,
    memory: '1769Mi',
    ephemeralStorage: '1Gi',
    timeoutSeconds: 30,
    env: [{ name: 'GREETING', value: 'hi' }],
  });
  const revision = revisionHash(f.spec);
  const d = desiredDeployment(f, revision, 2);
  assert.equal(d.metadata!.name, `echo-${revision}`);
  assert.equal(d.metadata!.namespace, 'team-a');
  assert.deepEqual(d.metadata!.ownerReferences, [
    {
      apiVersion: 'hearth.dev/v1alpha1',
      kind: 'Function',
      name: 'echo',
      uid: '1234-uid',
      controller: true,
      blockOwnerDeletion: true,
    },
  ]);
  assert.equal(d.spec!.replicas, 2);
  const pod = d.spec!.template.spec!;
  assert.equal(pod.automountServiceAccountToken, false);
  assert.equal(pod.securityContext!.runAsNonRoot, true);
  assert.deepEqual(pod.securityContext!.seccompProfile, { type: 'RuntimeDefault' });
  assert.equal(pod.terminationGracePeriodSeconds, 40, 'long enough to finish a 30 s call');
  const c = pod.containers[0]!;
  assert.deepEqual(c.command, ['node', '/opt/hearth/runtime-shim/dist/main.cjs']);
  assert.equal(c.securityContext!.readOnlyRootFilesystem, true);
  assert.equal(c.securityContext!.allowPrivilegeEscalation, false);
  assert.deepEqual(c.securityContext!.capabilities, { drop: ['ALL'] });
  assert.equal(c.resources!.limits!.memory, '1769Mi');
  assert.equal(c.resources!.limits!.cpu, '1000m', 'one vCPU per 1769Mi');
  assert.ok(c.resources!.limits!['ephemeral-storage']);
  assert.equal(c.readinessProbe!.httpGet!.path, '/readyz');
  const env = Object.fromEntries(c.env!.map((e) => [e.name, e.value]));
  assert.equal(env.HEARTH_FUNCTION_NAME, 'echo');
  assert.equal(env.HEARTH_REVISION, revision);
  assert.equal(env.HEARTH_MEMORY_MB, '1769');
  assert.equal(env.HEARTH_TIMEOUT_SECONDS, '30');
  assert.equal(env.HEARTH_EPHEMERAL_STORAGE_MB, '1024');
  assert.equal(env.GREETING, 'hi');
  const tmp = pod.volumes!.find((v) => v.name === 'tmp')!;
  assert.equal(tmp.emptyDir!.sizeLimit, '1024Mi');
  assert.ok(c.volumeMounts!.some((m) => m.name === 'tmp' && m.mountPath === '/tmp'));
  // The shim watches and wipes the pod's own /tmp, where Lambda code writes, not a TMPDIR of its own.
  assert.equal(env.HEARTH_TMP_DIR, '/tmp');
  assert.equal(env.HEARTH_ISOLATION, 'portable');
  assert.ok(c.volumeMounts!.some((m) => m.name === 'code' && m.readOnly));
  assert.deepEqual(d.spec!.selector.matchLabels, { [Labels.function]: 'echo', [Labels.revision]: revision });
  assert.equal(env.HEARTH_CONCURRENCY, '1');
  assert.equal(env.HEARTH_PER_RUNTIME_CONCURRENCY, undefined, 'pods of functions without it start as before');
});

test('calls per runtime reach the shim beside calls per instance', () => {
  const f = fn({ runtime: 'nodejs20.x', code: inline, concurrency: { perInstance: 64, perRuntime: 32 } });
  const d = desiredDeployment(f, revisionHash(f.spec), 1);
  const env = Object.fromEntries(d.spec!.template.spec!.containers[0]!.env!.map((e) => [e.name, e.value]));
  assert.equal(env.HEARTH_CONCURRENCY, '64');
  assert.equal(env.HEARTH_PER_RUNTIME_CONCURRENCY, '32');
});

test("the function's NODE_* variables reach the shim renamed, so that its own Node does not act on them", () => {
  const valueFrom = { secretKeyRef: { name: 'tracing', key: 'options' } };
  const f = fn({
    runtime: 'nodejs20.x',
    code: inline,
    env: [
      { name: 'NODE_OPTIONS', value: '--require ./tracer.js' },
      { name: 'NODE_EXTRA_CA_CERTS', valueFrom },
      { name: 'GREETING', value: 'hi' },
    ],
  });
  const env = desiredDeployment(f, 'r1', 1).spec!.template.spec!.containers[0]!.env!;
  const names = env.map((e) => e.name);
  assert.ok(!names.includes('NODE_OPTIONS') && !names.includes('NODE_EXTRA_CA_CERTS'));
  assert.deepEqual(
    env.find((e) => e.name === 'HEARTH_ENV_NODE_OPTIONS'),
    { name: 'HEARTH_ENV_NODE_OPTIONS', value: '--require ./tracer.js' },
  );
  assert.deepEqual(
    env.find((e) => e.name === 'HEARTH_ENV_NODE_EXTRA_CA_CERTS'),
    { name: 'HEARTH_ENV_NODE_EXTRA_CA_CERTS', valueFrom },
  );
  assert.ok(names.includes('GREETING'));
});

test('secret references in env pass through to the pod unchanged', () => {
  const valueFrom = { secretKeyRef: { name: 'db', key: 'password' } };
  const f = fn({ runtime: 'nodejs20.x', code: inline, env: [{ name: 'DB_PASSWORD', valueFrom }] });
  const env = desiredDeployment(f, 'r1', 1).spec!.template.spec!.containers[0]!.env!;
  assert.deepEqual(
    env.find((e) => e.name === 'DB_PASSWORD'),
    { name: 'DB_PASSWORD', valueFrom },
  );
});

test('inline code becomes a ConfigMap whose numbered keys map back to the file paths', () => {
  const f = fn({ runtime: 'nodejs20.x', code: inline });
  const cm = desiredCodeConfigMap(f, 'r1')!;
  assert.deepEqual(cm.data, { f0: 'export const handler = async (e) => e', f1: 'export {}' });
  const volume = desiredDeployment(f, 'r1', 1).spec!.template.spec!.volumes!.find((v) => v.name === 'code')!;
  assert.equal(volume.configMap!.name, cm.metadata!.name);
  assert.deepEqual(
    volume.configMap!.items!.map((i) => [i.key, i.path]),
    [
      ['f0', 'index.mjs'],
      ['f1', 'lib/util.mjs'],
    ],
  );
  const fromConfigMap = fn({ runtime: 'nodejs20.x', code: { configMap: { name: 'my-code' } } });
  assert.equal(desiredCodeConfigMap(fromConfigMap, 'r1'), undefined);
  assert.equal(
    desiredDeployment(fromConfigMap, 'r1', 1).spec!.template.spec!.volumes![0]!.configMap!.name,
    'my-code',
  );
});

test("an image function runs its own image, with the shim copied in from the provided runtime's image", () => {
  const f = fn({
    runtime: 'provided.al2023',
    handler: 'app.handler',
    code: { image: 'registry.example/fn:7' },
    ephemeralStorage: '512Mi',
  });
  const pod = desiredDeployment(f, 'r1', 1).spec!.template.spec!;
  const [installer] = pod.initContainers!;
  assert.equal(installer!.name, 'install-shim');
  assert.equal(installer!.image, defaultKubeOptions.images['provided.al2023']);
  assert.equal(installer!.securityContext!.readOnlyRootFilesystem, true);
  const runtime = pod.containers[0]!;
  assert.equal(runtime.image, 'registry.example/fn:7');
  // The copied Node brings its own loader: nothing of the image's libc is used.
  assert.deepEqual(runtime.command!.slice(0, 3), [
    '/hearth-shim/portable/ld.so',
    '--library-path',
    '/hearth-shim/portable/lib',
  ]);
  const env = Object.fromEntries(runtime.env!.map((e) => [e.name, e.value]));
  assert.equal(env.HEARTH_RUNTIME_COMMAND, JSON.stringify(['/lambda-entrypoint.sh', 'app.handler']));
  assert.equal(env.HEARTH_CODE_DIR, '/var/task');
  assert.equal(env.HEARTH_RUNTIME, 'provided.al2023');
  assert.deepEqual(
    runtime.volumeMounts!.find((m) => m.name === 'shim'),
    {
      name: 'shim',
      mountPath: '/hearth-shim',
      readOnly: true,
    },
  );
  assert.equal(
    pod.volumes!.find((v) => v.name === 'code'),
    undefined,
    'the code is in the image',
  );
  assert.equal(runtime.resources!.limits!['ephemeral-storage'], `${512 + 256 + 256}Mi`);
  const configured = desiredDeployment(
    fn({
      ...f.spec,
      imageConfig: { entryPoint: ['/app/run'], command: ['--fast'], workingDirectory: '/app' },
    }),
    'r1',
    1,
  ).spec!.template.spec!.containers[0]!.env!;
  const configuredEnv = Object.fromEntries(configured.map((e) => [e.name, e.value]));
  assert.equal(configuredEnv.HEARTH_RUNTIME_COMMAND, '["/app/run","--fast"]');
  assert.equal(configuredEnv.HEARTH_CODE_DIR, '/app');
});

test("an image that cannot be pulled is named with the kubelet's reason", () => {
  const pod = (reason: string, message?: string) =>
    ({
      metadata: { name: 'p' },
      status: { containerStatuses: [{ name: 'function', state: { waiting: { reason, message } } }] },
    }) as V1Pod;
  assert.equal(imagePullFailure([pod('ContainerCreating')]), undefined);
  assert.deepEqual(
    imagePullFailure([pod('ContainerCreating'), pod('ImagePullBackOff', 'Back-off pulling image "fn:7"')]),
    {
      reason: 'ImagePullFailed',
      message: 'ImagePullBackOff: Back-off pulling image "fn:7"',
    },
  );
});

const sha256 = 'ab'.repeat(32);
const archive = { archive: { url: `http://gw:8080/hearth/v1/code/${sha256}.zip`, sha256 } };

test('archive code is fetched by a locked-down init container into a volume the runtime reads only', () => {
  const f = fn({ runtime: 'nodejs20.x', code: archive, ephemeralStorage: '512Mi' });
  const options = { ...defaultKubeOptions, codeFetcherImage: 'registry.example/hearth-controller:1' };
  const pod = desiredDeployment(f, 'r1', 1, options).spec!.template.spec!;
  assert.equal(pod.initContainers?.length, 1);
  const init = pod.initContainers[0]!;
  assert.equal(init.image, 'registry.example/hearth-controller:1');
  assert.deepEqual(init.command, ['node', '/opt/hearth/controller/dist/fetch-code.js']);
  const env = Object.fromEntries(init.env!.map((e) => [e.name, e.value]));
  assert.equal(env.HEARTH_CODE_URL, archive.archive.url);
  assert.equal(env.HEARTH_CODE_SHA256, sha256);
  assert.equal(init.terminationMessagePath, '/dev/termination-log');
  assert.equal(init.securityContext!.readOnlyRootFilesystem, true);
  assert.equal(init.securityContext!.allowPrivilegeEscalation, false);
  assert.deepEqual(init.securityContext!.capabilities, { drop: ['ALL'] });
  assert.ok(init.resources!.limits!.memory && init.resources!.limits!.cpu);
  assert.equal(pod.securityContext!.runAsNonRoot, true, 'the fetcher runs as the pod: not root');
  const volume = pod.volumes!.find((v) => v.name === 'code')!;
  assert.equal(volume.emptyDir!.sizeLimit, '250Mi', 'room for the largest unpacked archive');
  // The fetcher writes where the runtime's read-only /var/task comes from.
  const fetchMount = init.volumeMounts!.find((m) => m.name === 'code')!;
  assert.equal(env.HEARTH_CODE_DIR, `${fetchMount.mountPath}/task`);
  const runtime = pod.containers[0]!;
  assert.deepEqual(
    runtime.volumeMounts!.find((m) => m.name === 'code'),
    { name: 'code', mountPath: '/var/task', readOnly: true, subPath: 'task' },
  );
  assert.equal(runtime.resources!.limits!['ephemeral-storage'], `${512 + 256 + 250}Mi`);
  // Other code sources need no fetcher.
  assert.equal(
    desiredDeployment(fn({ runtime: 'nodejs20.x', code: inline }), 'r1', 1).spec!.template.spec!
      .initContainers,
    undefined,
  );
});

const fetcherPod = (name: string, status: Record<string, unknown>): V1Pod => ({
  metadata: { name },
  status: {
    initContainerStatuses: [
      { name: 'fetch-code', ready: false, restartCount: 1, image: 'i', imageID: 'i', ...status },
    ],
  },
});

test('a failed code fetch names its reason from the init container termination message', () => {
  const mismatch = codeFetchMessage(
    'ArchiveChecksumMismatch',
    'code archive http://gw/x.zip has sha256 00, but spec.code.archive.sha256 expects ff',
  );
  // Waiting to be restarted: the last exit says why.
  const crashLooping = fetcherPod('echo-r1-a', {
    state: { waiting: { reason: 'CrashLoopBackOff' } },
    lastState: { terminated: { exitCode: 1, message: mismatch } },
  });
  assert.deepEqual(codeFetchFailure([crashLooping]), {
    reason: 'ArchiveChecksumMismatch',
    message: 'code archive http://gw/x.zip has sha256 00, but spec.code.archive.sha256 expects ff',
  });
  const justFailed = fetcherPod('echo-r1-b', {
    state: { terminated: { exitCode: 1, message: codeFetchMessage('ArchiveUnavailable', 'HTTP 503') } },
  });
  assert.deepEqual(codeFetchFailure([justFailed]), { reason: 'ArchiveUnavailable', message: 'HTTP 503' });
  const killed = fetcherPod('echo-r1-c', { state: { terminated: { exitCode: 137, reason: 'OOMKilled' } } });
  assert.deepEqual(codeFetchFailure([killed]), {
    reason: 'ArchiveUnavailable',
    message: 'the fetch-code init container of pod echo-r1-c exited with code 137 (OOMKilled)',
  });
  // Fetching, fetched, or a retry that has since succeeded: nothing to report.
  assert.equal(codeFetchFailure([fetcherPod('p', { state: { running: {} } })]), undefined);
  assert.equal(
    codeFetchFailure([
      fetcherPod('p', {
        ready: true,
        state: { terminated: { exitCode: 0 } },
        lastState: { terminated: { exitCode: 1, message: mismatch } },
      }),
    ]),
    undefined,
  );
  assert.equal(codeFetchFailure([{ metadata: { name: 'inline' }, status: {} }]), undefined);
});

test('the Service selects exactly the pods of its revision', () => {
  const f = fn({ runtime: 'python3.11', code: inline });
  const s = desiredService(f, 'abc');
  assert.deepEqual(s.spec!.selector, { [Labels.function]: 'echo', [Labels.revision]: 'abc' });
  assert.equal(s.spec!.ports![0]!.port, 8080);
  assert.equal(s.metadata!.ownerReferences![0]!.uid, '1234-uid');
});

test('object names are DNS labels even for long or digit-first function names', () => {
  assert.equal(revisionObjectName('echo', '0123456789'), 'echo-0123456789');
  for (const name of ['9lives', 'a'.repeat(63), `${'b'.repeat(40)}-${'c'.repeat(20)}`]) {
    const n = revisionObjectName(name, '0123456789');
    assert.match(n, /^[a-z]([-a-z0-9]*[a-z0-9])?$/);
    assert.ok(n.length <= 63, n);
  }
  assert.notEqual(
    revisionObjectName('a'.repeat(60) + 'x', 'r'),
    revisionObjectName('a'.repeat(60) + 'y', 'r'),
  );
  assert.equal(cpuMillis(128), 73);
});

test('an object carries the hash of what was applied; a changed spec or replicas needs applying again', () => {
  const echo = fn({ runtime: 'nodejs20.x', code: inline });
  const applied = withAppliedHash(desiredDeployment(echo, 'r1', 1));
  assert.match(applied.metadata!.annotations![APPLIED_HASH_ANNOTATION]!, /^[0-9a-f]{16}$/);
  assert.ok(isApplied(applied, withAppliedHash(desiredDeployment(echo, 'r1', 1))));
  assert.ok(!isApplied(applied, withAppliedHash(desiredDeployment(echo, 'r1', 2))));
  assert.ok(!isApplied(applied, withAppliedHash(desiredDeployment(echo, 'r2', 1))));
  assert.ok(!isApplied({ ...applied, spec: { ...applied.spec!, replicas: 3 } }, applied));
  assert.ok(!isApplied(undefined, applied));
});
