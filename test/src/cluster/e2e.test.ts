// Tier 2, end to end on a real single-node cluster (test/cluster/cluster.sh): the chart installed
// with helm and the locally built images, a Function of every runtime applied with kubectl and
// invoked through the gateway's Service (sync, async, dead letters, timeout, /tmp overflow),
// a code change rolling to a new revision, the Lambda management API through the AWS SDK v3 (a
// zip in the code store, fetched by the function pod's init container; a wrong sha256 named in
// the Function's status), deletion cleaning up, and a real Prometheus scraping the gateway and the
// workers while every dashboard query and alert expression returns series.
//
// Runs as root (it owns the machine's cni0 bridge and containerd) after scripts/setup.sh has built
// the node binaries and images; HEARTH_CLUSTER_TESTS=0 leaves it out, =1 insists on it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import {
  CreateFunctionCommand,
  GetFunctionCommand,
  InvokeCommand,
  LambdaClient,
  UpdateFunctionCodeCommand,
  waitUntilFunctionActiveV2,
  waitUntilFunctionUpdatedV2,
} from '@aws-sdk/client-lambda';
import { freePort } from '../harness/process.js';
import { kubeBinaries } from '../harness/kube.js';
import { zipOf } from '../management/zips.js';
import {
  alertSignal,
  CACHE,
  CHART,
  CI_VALUES,
  dashboardQueries,
  helmBinary,
  KUBE_VERSION,
  must,
  promtoolBinary,
  REPO,
  renderChart,
  ruleGroups,
  run,
} from './tools.js';

const CLUSTER_SH = join(REPO, 'test/cluster/cluster.sh');
const NODE_BIN = join(CACHE, 'kube', KUBE_VERSION, 'node-bin');
const NAMESPACE = 'hearth-system';
const FN_NAMESPACE = 'default';
/** An AWS-style key pair the gateway accepts (SigV4), for the AWS SDK. */
const ACCESS_KEY = { accessKeyId: 'AKIDHEARTHE2E', secretAccessKey: 'e2e-secret-access-key' };

function skipReason(): string | false {
  if (process.env.HEARTH_CLUSTER_TESTS === '0') return 'HEARTH_CLUSTER_TESTS=0 leaves the cluster tests out';
  if (process.getuid?.() !== 0) return 'the cluster tests need root';
  if (!kubeBinaries()) return 'kube binaries not built: run test/cluster/build-kube.sh';
  if (!existsSync(join(NODE_BIN, 'kubelet'))) return 'kubelet not built: run test/cluster/build-node.sh';
  if (!helmBinary()) return 'helm not built: run test/cluster/build-node.sh';
  const images = existsSync(join(CACHE, 'images')) ? readdirSync(join(CACHE, 'images')) : [];
  if (!images.some((f) => f.startsWith('hearth-pause-'))) return 'images not built: run images/build.sh';
  if (!existsSync('/usr/bin/prometheus')) return 'prometheus not installed';
  return false;
}

const fn = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'hearth.dev/v1alpha1',
  kind: 'Function',
  metadata: { name, namespace: FN_NAMESPACE },
  spec: {
    handler: 'index.handler',
    memory: '128Mi',
    timeoutSeconds: 5,
    scaling: { minWarm: 1, maxInstances: 2 },
    ...spec,
  },
});
const nodeCode = (body: string) => ({ inline: { files: { 'index.mjs': body } } });
const hello = (version: string) =>
  nodeCode(`let warm = 0;
export const handler = async (event, context) => ({ version: '${version}', node: process.version, warm: ++warm, event, requestId: context.awsRequestId });`);

const BOOTSTRAP = `#!/usr/bin/env node
// A provided.al2023 runtime: the Lambda Runtime API loop, by hand.
const api = 'http://' + process.env.AWS_LAMBDA_RUNTIME_API + '/2018-06-01/runtime/invocation';
for (;;) {
  const next = await fetch(api + '/next');
  const id = next.headers.get('lambda-runtime-aws-request-id');
  const event = await next.json();
  await fetch(api + '/' + id + '/response', { method: 'POST', body: JSON.stringify({ runtime: 'provided', event }) });
}
`;

const FUNCTIONS = [
  fn('hello-node20', { runtime: 'nodejs20.x', code: hello('v1') }),
  fn('hello-node22', { runtime: 'nodejs22.x', code: hello('v1') }),
  fn('hello-python', {
    runtime: 'python3.11',
    handler: 'app.handler',
    code: {
      inline: {
        files: {
          'app.py':
            "import sys\ndef handler(event, context):\n    return {'runtime': 'python', 'version': sys.version.split()[0], 'event': event}\n",
        },
      },
    },
  }),
  fn('hello-provided', {
    runtime: 'provided.al2023',
    handler: 'unused',
    code: { inline: { files: { bootstrap: BOOTSTRAP, 'bootstrap.mjs': BOOTSTRAP } } },
  }),
  fn('fails', {
    runtime: 'nodejs20.x',
    code: nodeCode("export const handler = async () => { throw new Error('boom'); };"),
    async: { maxRetryAttempts: 1 },
  }),
  fn('slow', {
    runtime: 'nodejs20.x',
    timeoutSeconds: 1,
    code: nodeCode(
      'export const handler = async () => { await new Promise((r) => setTimeout(r, 3000)); return "late"; };',
    ),
  }),
  fn('fills-tmp', {
    runtime: 'nodejs20.x',
    timeoutSeconds: 30,
    ephemeralStorage: '512Mi',
    code: nodeCode(`import { openSync, writeSync, closeSync, rmSync } from 'node:fs';
export const handler = async (event) => {
  const mb = event.mb ?? 600;
  const chunk = Buffer.alloc(1 << 20, 7);
  const fd = openSync('/tmp/fill', 'w');
  try { for (let i = 0; i < mb; i++) writeSync(fd, chunk); } finally { closeSync(fd); }
  if (event.clean) rmSync('/tmp/fill');
  return { wroteMb: mb };
};`),
  }),
  fn('no-capacity', {
    runtime: 'nodejs20.x',
    concurrency: { reserved: 0 },
    scaling: { minWarm: 0, maxInstances: 1 },
    code: hello('v1'),
  }),
];

const clusterSkip = skipReason();
if (clusterSkip && process.env.HEARTH_CLUSTER_TESTS === '1') {
  test('the single-node cluster test can run (HEARTH_CLUSTER_TESTS=1)', () => assert.fail(clusterSkip));
}

describe('Hearth on a real single-node cluster', { skip: clusterSkip, timeout: 40 * 60_000 }, () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let gateway: string;
  let token: string;
  let prometheus: ChildProcess | undefined;
  let promUrl: string;
  const timings: Record<string, number> = {};
  const timed = async <T>(name: string, work: () => Promise<T>): Promise<T> => {
    const start = Date.now();
    try {
      return await work();
    } finally {
      timings[name] = Math.round((Date.now() - start) / 100) / 10;
    }
  };

  const kubectl = (args: string[], input?: string) =>
    must('kubectl', args, { env, ...(input !== undefined ? { input } : {}) });

  /** What a failing step prints: pods, functions, events and each daemon's log tail. */
  async function diagnose(): Promise<string> {
    const parts: string[] = [];
    for (const args of [
      ['get', 'pods,fn,deploy,svc', '-A', '-o', 'wide'],
      ['get', 'events', '-A', '--sort-by=.lastTimestamp'],
      ['-n', NAMESPACE, 'logs', '-l', 'app.kubernetes.io/component=controller', '--tail=40', '--prefix'],
      ['-n', NAMESPACE, 'logs', '-l', 'app.kubernetes.io/component=gateway', '--tail=40', '--prefix'],
      ['-n', NAMESPACE, 'logs', '-l', 'app.kubernetes.io/component=worker', '--tail=20', '--prefix'],
    ]) {
      const r = await run('kubectl', args, { env, timeoutMs: 20_000 });
      parts.push(`$ kubectl ${args.join(' ')}\n${r.stdout}${r.stderr}`);
    }
    // The daemons' logs first: what a reader needs most (the cluster's objects) comes last.
    const daemons = await run('bash', [CLUSTER_SH, 'logs', dir], {
      timeoutMs: 20_000,
      env: { ...process.env, LINES_PER_LOG: '15' },
    });
    return [daemons.stdout.slice(-12_000), ...parts].join('\n');
  }
  /** A test step whose failure carries the cluster's state. */
  const step = (name: string, work: () => Promise<void>, timeoutMs = 5 * 60_000) =>
    test(name, { timeout: timeoutMs }, async () => {
      try {
        await timed(name, work);
      } catch (error) {
        const detail = await diagnose().catch((e: unknown) => `(no diagnostics: ${String(e)})`);
        throw new Error(
          `${error instanceof Error ? error.stack : String(error)}\n\n${detail.slice(-30_000)}`,
          { cause: error },
        );
      }
    });

  async function invoke(name: string, payload: unknown, headers: Record<string, string> = {}) {
    const res = await fetch(`${gateway}/2015-03-31/functions/${name}/invocations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(payload),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: res.status, functionError: res.headers.get('x-amz-function-error'), body };
  }

  async function until<T>(
    what: string,
    probe: () => Promise<T | undefined>,
    timeoutMs = 120_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      try {
        const value = await probe();
        if (value !== undefined) return value;
      } catch (error) {
        last = error;
      }
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
      await sleep(1000);
    }
  }

  const podIps = async (component: string) =>
    (
      await kubectl([
        '-n',
        NAMESPACE,
        'get',
        'pods',
        '-l',
        `app.kubernetes.io/component=${component}`,
        '-o',
        'jsonpath={.items[*].status.podIP}',
      ])
    )
      .trim()
      .split(/\s+/)
      .filter(Boolean);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hearth-cluster-'));
    const up = await timed('cluster up', () =>
      run('bash', [CLUSTER_SH, 'up', dir], { timeoutMs: 10 * 60_000 }),
    );
    if (up.code !== 0) {
      const logs = (await run('bash', [CLUSTER_SH, 'logs', dir])).stdout;
      await run('bash', [CLUSTER_SH, 'down', dir]);
      throw new Error(`cluster.sh up failed:\n${up.stderr}\n${logs}`);
    }
    const kubeconfig = /export KUBECONFIG=(\S+)/.exec(up.stdout)![1]!;
    env = { ...process.env, KUBECONFIG: kubeconfig };
  });

  after(async () => {
    prometheus?.kill('SIGTERM');
    if (dir) {
      const down = await run('bash', [CLUSTER_SH, 'down', dir], { timeoutMs: 3 * 60_000 });
      if (down.code !== 0) console.error(`cluster.sh down: ${down.stderr}`);
    }
    console.log(`# cluster e2e timings (s): ${JSON.stringify(timings)}`);
  });

  step('helm installs the chart with the local images and every component becomes ready', async () => {
    // The code store: the node has no storage provisioner, so a hostPath volume the chart's claim binds to.
    const codeStore = join(dir, 'code-store');
    await mkdir(codeStore);
    await chown(codeStore, 65532, 65532);
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name: 'hearth-e2e-code' },
        spec: {
          capacity: { storage: '1Gi' },
          accessModes: ['ReadWriteMany'],
          persistentVolumeReclaimPolicy: 'Retain',
          storageClassName: '',
          claimRef: { namespace: NAMESPACE, name: 'hearth-code' },
          hostPath: { path: codeStore, type: 'Directory' },
        },
      }),
    );
    await kubectl(['create', 'namespace', NAMESPACE]);
    await kubectl([
      '-n',
      NAMESPACE,
      'create',
      'secret',
      'generic',
      'hearth-e2e-access-keys',
      `--from-literal=access-keys=${ACCESS_KEY.accessKeyId}:${ACCESS_KEY.secretAccessKey}`,
    ]);
    const values = join(dir, 'e2e-values.yaml');
    await writeFile(
      values,
      stringify({
        functions: { namespaces: [FN_NAMESPACE] },
        gateway: { auth: { accessKeysSecret: 'hearth-e2e-access-keys' } },
        codeStore: { enabled: true, size: '1Gi' },
        // Retries within seconds, so that a failing event reaches the DLQ during the test.
        worker: { extraEnv: [{ name: 'HEARTH_ASYNC_RETRY_DELAYS_MS', value: '500,1000' }] },
      }),
    );
    await must(
      helmBinary()!,
      [
        'install',
        'hearth',
        CHART,
        '--namespace',
        NAMESPACE,
        '--create-namespace',
        '-f',
        CI_VALUES,
        '-f',
        values,
        '--wait',
        '--timeout',
        '6m',
      ],
      {
        env,
        timeoutMs: 7 * 60_000,
      },
    );
    const ip = (
      await kubectl(['-n', NAMESPACE, 'get', 'svc', 'hearth-gateway', '-o', 'jsonpath={.spec.clusterIP}'])
    ).trim();
    assert.match(ip, /^198\.19\./, 'the gateway Service has an address in the service range');
    gateway = `http://${ip}:8080`;
    token = Buffer.from(
      (
        await kubectl(['-n', NAMESPACE, 'get', 'secret', 'hearth-api-key', '-o', 'jsonpath={.data.api-key}'])
      ).trim(),
      'base64',
    ).toString();
    // Through kube-proxy to the gateway pod: healthy, and closed to callers without the key.
    const health = await until(
      'the gateway Service',
      async () => ((await fetch(`${gateway}/healthz`)).ok ? true : undefined),
      60_000,
    );
    assert.ok(health);
    const anonymous = await fetch(`${gateway}/function/anything`, { method: 'POST', body: '{}' });
    assert.equal(anonymous.status, 403, 'a call without the key is refused, as Lambda does');
    // Redis keeps acknowledged events: AOF on, no eviction, a password.
    const [redisIp] = await podIps('redis');
    const password = Buffer.from(
      (
        await kubectl([
          '-n',
          NAMESPACE,
          'get',
          'secret',
          'hearth-redis',
          '-o',
          'jsonpath={.data.redis-password}',
        ])
      ).trim(),
      'base64',
    ).toString();
    const redis = (args: string[], auth = true) =>
      run('redis-cli', ['-h', redisIp!, ...(auth ? ['--no-auth-warning', '-a', password] : []), ...args]);
    assert.match((await redis(['config', 'get', 'appendonly'])).stdout, /appendonly\s+yes/);
    assert.match(
      (await redis(['config', 'get', 'maxmemory-policy'])).stdout,
      /maxmemory-policy\s+noeviction/,
    );
    assert.match((await redis(['ping'], false)).stdout, /NOAUTH/);
  });

  step(
    'a Function of every runtime becomes Ready; its hardened pod runs the runtime on the node',
    async () => {
      await kubectl(['apply', '-f', '-'], FUNCTIONS.map((f) => JSON.stringify(f)).join('\n'));
      const ready = FUNCTIONS.filter((f) => f.spec.scaling.minWarm > 0).map((f) => `fn/${f.metadata.name}`);
      await kubectl(['-n', FN_NAMESPACE, 'wait', '--for=condition=Ready', '--timeout=240s', ...ready]);
      // Each instance's shim, called at its pod IP the way the gateway calls it.
      const shim = async (name: string, event: unknown) => {
        const ip = (
          await kubectl([
            '-n',
            FN_NAMESPACE,
            'get',
            'pods',
            '-l',
            `hearth.dev/function=${name}`,
            '--field-selector=status.phase=Running',
            '-o',
            'jsonpath={.items[0].status.podIP}',
          ])
        ).trim();
        assert.match(ip, /^198\.18\./, `${name} has a pod address`);
        const res = await fetch(`http://${ip}:8080/invoke`, {
          method: 'POST',
          body: JSON.stringify(event),
          signal: AbortSignal.timeout(30_000),
        });
        return {
          errorType: res.headers.get('x-hearth-error-type'),
          body: (await res.json()) as Record<string, unknown>,
        };
      };
      const node20 = await shim('hello-node20', {});
      assert.match(String(node20.body.node), /^v20\./, JSON.stringify(node20));
      const node22 = await shim('hello-node22', {});
      assert.match(String(node22.body.node), /^v22\./, JSON.stringify(node22));
      const python = await shim('hello-python', {});
      assert.match(String(python.body.version), /^3\.11\./, JSON.stringify(python));
      assert.deepEqual((await shim('hello-provided', { n: 1 })).body, {
        runtime: 'provided',
        event: { n: 1 },
      });
      assert.equal((await shim('slow', {})).errorType, 'Sandbox.Timedout');
      const pod = JSON.parse(
        await kubectl([
          '-n',
          FN_NAMESPACE,
          'get',
          'pods',
          '-l',
          'hearth.dev/function=hello-node20',
          '-o',
          'json',
        ]),
      ).items[0].spec;
      assert.equal(pod.automountServiceAccountToken, false);
      assert.equal(pod.containers[0].securityContext.readOnlyRootFilesystem, true);
      assert.equal(pod.containers[0].image, 'localhost/hearth-runtime-nodejs20:0.1.0');
    },
  );

  step('the second controller replica takes over when the leader goes', async () => {
    const holder = async () =>
      (
        await kubectl([
          '-n',
          NAMESPACE,
          'get',
          'lease',
          'hearth-controller',
          '-o',
          'jsonpath={.spec.holderIdentity}',
        ])
      ).trim();
    const leader = await until('a leader', async () => (await holder()) || undefined, 60_000);
    const pod = (
      await kubectl([
        '-n',
        NAMESPACE,
        'get',
        'pods',
        '-l',
        'app.kubernetes.io/component=controller',
        '-o',
        'jsonpath={.items[*].metadata.name}',
      ])
    )
      .trim()
      .split(/\s+/)
      .find((name) => leader.startsWith(name));
    assert.ok(pod, `no controller pod holds the lease ${leader}`);
    await kubectl(['-n', NAMESPACE, 'delete', 'pod', pod, '--wait=false']);
    const next = await until(
      'another leader',
      async () => {
        const h = await holder();
        return h && !h.startsWith(pod) ? h : undefined;
      },
      90_000,
    );
    assert.notEqual(next, leader);
    // The new leader reconciles: a Function applied now becomes Ready.
    const late = fn('late', { runtime: 'nodejs20.x', code: hello('late') });
    await kubectl(['apply', '-f', '-'], JSON.stringify(late));
    await kubectl(['-n', FN_NAMESPACE, 'wait', '--for=condition=Ready', '--timeout=120s', 'fn/late']);
  });

  step('every runtime answers through the gateway', async () => {
    const node20 = await invoke('hello-node20', { name: 'a' });
    assert.equal(node20.status, 200, JSON.stringify(node20));
    assert.match((node20.body as { node: string }).node, /^v20\./);
    const node22 = await invoke('hello-node22', { name: 'b' });
    assert.match((node22.body as { node: string }).node, /^v22\./, JSON.stringify(node22));
    const python = await invoke('hello-python', { name: 'c' });
    assert.deepEqual(python.body, {
      runtime: 'python',
      version: (python.body as { version: string }).version,
      event: { name: 'c' },
    });
    assert.match((python.body as { version: string }).version, /^3\.11\./);
    const provided = await invoke('hello-provided', { name: 'd' });
    assert.deepEqual(provided.body, { runtime: 'provided', event: { name: 'd' } }, JSON.stringify(provided));
    // Warm: the same instance keeps its state between calls (an earlier step called it directly too).
    const again = await invoke('hello-node20', {});
    assert.equal((again.body as { warm: number }).warm, (node20.body as { warm: number }).warm + 1);
  });

  step("hearth logs reads the function's pods through the gateway, and follows them", async () => {
    interface LogPage {
      lines: { id: string; time: number; instance: string; line: string }[];
      nextToken?: string;
    }
    const logs = async (name: string, query: string) => {
      const res = await fetch(`${gateway}/hearth/v1/functions/${name}/logs?${query}`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(30_000),
      });
      return { status: res.status, page: (await res.json()) as LogPage };
    };
    const called = await invoke('hello-node20', { name: 'logged' });
    const requestId = (called.body as { requestId: string }).requestId;
    const report = (page: LogPage) =>
      page.lines.find((l) => l.line.startsWith(`REPORT RequestId: ${requestId}`));
    // The kubelet writes the pod's output to its log file a moment after the shim writes it.
    const first = await until(`the REPORT line of ${requestId}`, async () => {
      const { status, page } = await logs('hello-node20', 'limit=1000');
      assert.equal(status, 200, JSON.stringify(page));
      return report(page) ? page : undefined;
    });
    assert.match(report(first)!.instance, /^hello-node20-/, 'the pod is the instance');
    assert.ok(first.lines.some((l) => l.line === `START RequestId: ${requestId} Version: $LATEST`));

    // --follow: after the token come the next call's lines, and nothing already seen.
    const next = await invoke('hello-node20', { name: 'followed' });
    const nextId = (next.body as { requestId: string }).requestId;
    const followed = await until(`the REPORT line of ${nextId} after the token`, async () => {
      const { page } = await logs('hello-node20', `after=${encodeURIComponent(first.nextToken!)}&limit=1000`);
      return page.lines.some((l) => l.line.startsWith(`REPORT RequestId: ${nextId}`)) ? page : undefined;
    });
    const seen = new Set(first.lines.map((l) => l.id));
    assert.deepEqual(
      followed.lines.filter((l) => seen.has(l.id) || l.line.includes(requestId)),
      [],
      'a line shown before is not shown again',
    );
    assert.equal((await logs('no-such-function', 'limit=10')).status, 404);
  });

  step(
    'a function whose code is its own image runs that image behind the shim, which restarts its runtime after a timeout',
    async () => {
      // A static program alone in an image built from scratch: the shim copied into the pod must
      // bring everything it needs, and start the image's runtime as its entry point.
      const image = 'localhost/hearth-e2e-image-function:1';
      const work = await mkdtemp(join(tmpdir(), 'hearth-image-function-'));
      await mkdir(join(work, 'root', 'function'), { recursive: true });
      await must('gcc', [
        '-O2',
        '-static',
        '-o',
        join(work, 'root', 'function', 'bootstrap'),
        join(REPO, 'test/cluster/image-function/bootstrap.c'),
      ]);
      const container = (await must('buildah', ['from', 'scratch'])).trim();
      try {
        await must('buildah', ['copy', '--quiet', container, join(work, 'root'), '/']);
        await must('buildah', ['commit', '--quiet', '--rm', container, image]);
      } catch (error) {
        await run('buildah', ['rm', container]);
        throw error;
      }
      const archive = join(work, 'image.tar');
      await must('buildah', ['push', '--quiet', image, `oci-archive:${archive}:${image}`]);
      await run('buildah', ['rmi', image]);
      const snapshotter = (await readFile(join(dir, 'snapshotter'), 'utf8')).trim();
      await must('ctr', [
        '--address',
        join(dir, 'containerd', 'containerd.sock'),
        '-n',
        'k8s.io',
        'images',
        'import',
        '--snapshotter',
        snapshotter,
        archive,
      ]);
      await rm(work, { recursive: true, force: true });
      await kubectl(
        ['apply', '-f', '-'],
        JSON.stringify(
          fn('from-image', {
            runtime: 'provided.al2023',
            timeoutSeconds: 2,
            code: { image },
            imageConfig: { entryPoint: ['/function/bootstrap'], workingDirectory: '/function' },
          }),
        ),
      );
      await kubectl(['-n', FN_NAMESPACE, 'wait', '--for=condition=Ready', '--timeout=120s', 'fn/from-image']);
      const first = await invoke('from-image', { n: 1 });
      assert.deepEqual(first.body, { runtime: 'image', event: { n: 1 } }, JSON.stringify(first));
      const slept = await invoke('from-image', { sleep: true });
      assert.equal(slept.functionError, 'Unhandled', JSON.stringify(slept));
      assert.equal((slept.body as { errorType: string }).errorType, 'Sandbox.Timedout');
      const after = await invoke('from-image', { n: 2 });
      assert.deepEqual(after.body, { runtime: 'image', event: { n: 2 } }, JSON.stringify(after));
      // An image the node cannot get is named in status, not left as a pod that never starts.
      await kubectl(
        ['apply', '-f', '-'],
        JSON.stringify(
          fn('missing-image', {
            runtime: 'provided.al2023',
            code: { image: 'localhost/hearth-e2e-missing:1' },
          }),
        ),
      );
      const condition = await until('CodeReady=False for an image that cannot be pulled', async () => {
        const status = JSON.parse(
          await kubectl(['-n', FN_NAMESPACE, 'get', 'fn', 'missing-image', '-o', 'jsonpath={.status}']),
        ) as { conditions?: { type: string; status: string; reason: string; message?: string }[] };
        return status.conditions?.find((c) => c.type === 'CodeReady' && c.status === 'False');
      });
      assert.equal(condition.reason, 'ImagePullFailed', JSON.stringify(condition));
      assert.match(condition.message ?? '', /ErrImage|ImagePull/);
    },
  );

  step('function errors, timeouts and /tmp overflow come back in Lambda shape', async () => {
    const failed = await invoke('fails', {});
    assert.equal(failed.status, 200);
    assert.equal(failed.functionError, 'Unhandled');
    assert.equal((failed.body as { errorMessage: string }).errorMessage, 'boom');
    const slow = await invoke('slow', {});
    assert.equal(slow.functionError, 'Unhandled');
    assert.equal((slow.body as { errorType: string }).errorType, 'Sandbox.Timedout');
    const full = await invoke('fills-tmp', { mb: 600 });
    assert.ok(full.functionError, `writing 600 MB into a 512 MB /tmp succeeded: ${JSON.stringify(full)}`);
    // The instance recovers with an empty /tmp: a write within the limit succeeds.
    const fits = await until('fills-tmp to recover', async () => {
      const r = await invoke('fills-tmp', { mb: 100, clean: true });
      return r.functionError ? undefined : r;
    });
    assert.deepEqual(fits.body, { wroteMb: 100 });
    const throttled = await invoke('no-capacity', {});
    assert.equal(throttled.status, 429);
  });

  step('async events run on the workers; a failing one lands in the dead-letter queue', async () => {
    const accepted = await invoke('hello-node20', { async: true }, { 'x-amz-invocation-type': 'Event' });
    assert.equal(accepted.status, 202);
    const failing = await invoke('fails', { n: 1 }, { 'x-amz-invocation-type': 'Event' });
    assert.equal(failing.status, 202);
    const entries = await until('the failed event in the DLQ', async () => {
      const res = await fetch(`${gateway}/hearth/v1/functions/fails/dlq`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const page = (await res.json()) as { entries?: unknown[]; items?: unknown[] };
      const list = page.entries ?? page.items ?? [];
      return list.length > 0 ? list : undefined;
    });
    assert.match(JSON.stringify(entries), /boom/);
    const [worker] = await podIps('worker');
    const metrics = await until('the async success on the worker', async () => {
      const text = await (await fetch(`http://${worker}:8080/metrics`)).text();
      return /hearth_async_events_succeeded_total\{function="hello-node20"\} [1-9]/.test(text)
        ? text
        : undefined;
    });
    assert.match(metrics, /hearth_async_dead_lettered_total\{[^}]*function="fails"/);
  });

  step('changed code rolls to a new revision that answers', async () => {
    const before = (
      await kubectl(['-n', FN_NAMESPACE, 'get', 'fn', 'hello-node20', '-o', 'jsonpath={.status.revision}'])
    ).trim();
    const changed = fn('hello-node20', { runtime: 'nodejs20.x', code: hello('v2') });
    await kubectl(['apply', '-f', '-'], JSON.stringify(changed));
    const answer = await until('the v2 answer', async () => {
      const r = await invoke('hello-node20', {});
      return (r.body as { version?: string }).version === 'v2' ? r : undefined;
    });
    assert.equal((answer.body as { warm: number }).warm, 1, 'a new revision starts new instances');
    const after = (
      await kubectl(['-n', FN_NAMESPACE, 'get', 'fn', 'hello-node20', '-o', 'jsonpath={.status.revision}'])
    ).trim();
    assert.notEqual(after, before);
    // The old revision's objects go once it has drained.
    await until('the old revision to go', async () => {
      const names = await kubectl([
        '-n',
        FN_NAMESPACE,
        'get',
        'deploy',
        '-l',
        'hearth.dev/function=hello-node20',
        '-o',
        'jsonpath={.items[*].metadata.name}',
      ]);
      return names.includes(before) ? undefined : true;
    });
  });

  step(
    'the AWS SDK creates a function from a zip, invokes it, updates its code; a wrong sha256 is named in status',
    async () => {
      const lambda = new LambdaClient({ endpoint: gateway, region: 'us-east-1', credentials: ACCESS_KEY });
      const waiter = { client: lambda, maxWaitTime: 180, minDelay: 1, maxDelay: 3 };
      const handlerOf = (version: string) =>
        `export const handler = async (event) => ({ version: ${JSON.stringify(version)}, event });`;
      const decode = (payload: Uint8Array | undefined) =>
        JSON.parse(Buffer.from(payload ?? []).toString('utf8')) as unknown;
      const name = 'sdk-zip';
      const v1 = await zipOf({ 'index.mjs': handlerOf('v1') });
      const v2 = await zipOf({ 'index.mjs': handlerOf('v2') });
      const created = await lambda.send(
        new CreateFunctionCommand({
          FunctionName: name,
          Runtime: 'nodejs20.x',
          Handler: 'index.handler',
          Role: 'arn:aws:iam::000000000000:role/lambda',
          Code: { ZipFile: v1 },
        }),
      );
      assert.equal(created.CodeSha256, createHash('sha256').update(v1).digest('base64'));
      await waitUntilFunctionActiveV2(waiter, { FunctionName: name });
      const first = await lambda.send(
        new InvokeCommand({ FunctionName: name, Payload: Buffer.from('{"n":1}') }),
      );
      assert.deepEqual(decode(first.Payload), { version: 'v1', event: { n: 1 } });
      // The pod got its code from the init container, which ran as hardened as the runtime. (The
      // call may have scaled the pool up: a second pod can still be in its init.)
      const pods = JSON.parse(
        await kubectl(['-n', FN_NAMESPACE, 'get', 'pods', '-l', `hearth.dev/function=${name}`, '-o', 'json']),
      ).items as { spec: any; status: any }[]; // eslint-disable-line @typescript-eslint/no-explicit-any
      const pod = pods.find((p) => p.status.initContainerStatuses?.[0]?.state?.terminated);
      assert.ok(pod, 'a pod whose init container has run');
      assert.equal(pod.spec.initContainers[0].name, 'fetch-code');
      assert.equal(pod.spec.initContainers[0].securityContext.readOnlyRootFilesystem, true);
      assert.equal(pod.status.initContainerStatuses[0].state.terminated.exitCode, 0);

      await lambda.send(new UpdateFunctionCodeCommand({ FunctionName: name, ZipFile: v2 }));
      await waitUntilFunctionUpdatedV2(waiter, { FunctionName: name });
      const second = await lambda.send(
        new InvokeCommand({ FunctionName: name, Payload: Buffer.from('{"n":2}') }),
      );
      assert.deepEqual(decode(second.Payload), { version: 'v2', event: { n: 2 } });

      // A Function pointing at stored code with another hash: its pod never runs that code, and
      // the Function says why.
      const url = (
        await kubectl(['-n', FN_NAMESPACE, 'get', 'fn', name, '-o', 'jsonpath={.spec.code.archive.url}'])
      ).trim();
      const wrong = '0'.repeat(64);
      await kubectl(
        ['apply', '-f', '-'],
        JSON.stringify(fn('wrong-sha', { runtime: 'nodejs20.x', code: { archive: { url, sha256: wrong } } })),
      );
      const codeReady = await until('CodeReady=False on wrong-sha', async () => {
        const status = JSON.parse(
          await kubectl(['-n', FN_NAMESPACE, 'get', 'fn', 'wrong-sha', '-o', 'jsonpath={.status}']),
        ) as { conditions?: { type: string; status: string; reason: string; message: string }[] };
        const condition = status.conditions?.find((c) => c.type === 'CodeReady');
        return condition?.status === 'False' ? condition : undefined;
      });
      assert.equal(codeReady.reason, 'ArchiveChecksumMismatch');
      assert.match(codeReady.message, new RegExp(`expects ${wrong}`));
      const failed = await lambda.send(new GetFunctionCommand({ FunctionName: 'wrong-sha' }));
      assert.equal(failed.Configuration?.State, 'Failed');
      assert.match(failed.Configuration?.StateReason ?? '', /sha256/);
    },
  );

  step(
    'Prometheus scrapes the gateway and the workers; every dashboard query and alert expression has series',
    async () => {
      const port = await freePort();
      promUrl = `http://127.0.0.1:${port}`;
      const targets = [...(await podIps('gateway')), ...(await podIps('worker'))].map((ip) => `${ip}:8080`);
      const config = join(dir, 'prometheus.yml');
      const rulesFile = join(dir, 'rules.yaml');
      const rules = ruleGroups(await renderChart(['--api-versions', 'monitoring.coreos.com/v1']));
      await writeFile(rulesFile, stringify(rules));
      const check = await run(promtoolBinary()!, ['check', 'rules', rulesFile]);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      await writeFile(
        config,
        stringify({
          global: { scrape_interval: '1s', evaluation_interval: '1s' },
          rule_files: [rulesFile],
          scrape_configs: [{ job_name: 'hearth', static_configs: [{ targets }] }],
        }),
      );
      prometheus = spawn(
        '/usr/bin/prometheus',
        [
          `--config.file=${config}`,
          `--storage.tsdb.path=${join(dir, 'prometheus')}`,
          `--web.listen-address=127.0.0.1:${port}`,
        ],
        {
          stdio: 'ignore',
        },
      );
      const query = async (expr: string) => {
        const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
        const body = (await res.json()) as { status: string; error?: string; data?: { result: unknown[] } };
        if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
        return body.data!.result;
      };
      await until(
        'every target up',
        async () => ((await query('up == 1')).length === targets.length ? true : undefined),
        60_000,
      );
      // Traffic inside the rate windows: successes, errors, throttles, async work.
      await until('a few scrapes', async () =>
        (await query('count_over_time(up[1m])')).every(
          (s) => Number((s as { value: [number, string] }).value[1]) >= 3,
        )
          ? true
          : undefined,
      );
      await invoke('hello-node20', {});
      await invoke('fails', {});
      await invoke('no-capacity', {});
      await invoke('hello-node20', {}, { 'x-amz-invocation-type': 'Event' });
      await invoke('fails', { n: 2 }, { 'x-amz-invocation-type': 'Event' });
      const expressions = [
        ...dashboardQueries('1m').map((q) => ({ what: `dashboard "${q.panel}"`, expr: q.expr })),
        ...rules.groups.flatMap((g) =>
          g.rules.map((r) => ({ what: `alert ${r.alert} (signal)`, expr: alertSignal(r.expr) })),
        ),
      ];
      const empty = new Set(expressions.map((e) => e.what + ': ' + e.expr));
      await until(
        'series for every expression',
        async () => {
          for (const e of expressions)
            if ((await query(e.expr)).length > 0) empty.delete(e.what + ': ' + e.expr);
          return empty.size === 0 ? true : undefined;
        },
        90_000,
      ).catch((error: unknown) => {
        throw new Error(`${String(error)}\nno series:\n${[...empty].join('\n')}`);
      });
    },
  );

  step('deleting the Functions removes their pods, Deployments, Services and ConfigMaps', async () => {
    await kubectl(['-n', FN_NAMESPACE, 'delete', 'fn', '--all', '--wait=true', '--timeout=120s']);
    await until(
      'every function object to go',
      async () => {
        const left = await kubectl([
          '-n',
          FN_NAMESPACE,
          'get',
          'pods,deploy,rs,svc,cm',
          '-l',
          'hearth.dev/function',
          '-o',
          'name',
        ]);
        return left.trim() === '' ? true : undefined;
      },
      180_000,
    );
    const gone = await invoke('hello-node20', {});
    assert.equal(gone.status, 404);
  });
});
