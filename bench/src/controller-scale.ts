/**
 * The controller at scale: N Functions (1,000 by default) created at once on a real kube-apiserver
 * + etcd, reconciled by the controller's real process (`controller/dist/main.js`,
 * HEARTH_BACKEND=kubernetes), with Redis as the chart gives it (pools follow the gateways' demand,
 * routes go to the registry) unless --no-redis.
 *
 * There is no kubelet here, so "Ready as far as the control plane can tell" is, for every
 * Function (all with minWarm 0, the default, so none needs a pod to be Ready):
 *   status.observedGeneration = metadata.generation, status.revision set, condition CodeReady
 *   True, condition Ready True for that generation,
 * watched on the API server; at the end the Deployment and the Service `<name>-<revision>` of
 * every Function are checked to exist. The controller writes that status only after it has
 * applied the revision's ConfigMap, Deployment and Service.
 *
 * Reported: the time from the first create until all are reconciled, the rate, and the
 * controller's peak RSS (VmRSS sampled every 100 ms and the kernel's VmHWM), against the goals
 * (60 s, 250 MB). No peer is named for this one.
 *
 * Usage: node bench/dist/index.js controller-scale [--functions 1000] [--create-concurrency 16]
 *   [--no-redis] [--controller-manager] [--timeout 240] [--settle 10] [--cpu-prof dir] [--out results.md]
 * `--cpu-prof dir` runs the controller under `node --cpu-prof` and leaves the profile in `dir`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { Agent, request, type RequestOptions } from 'node:https';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { startProcess, startRedis, type RedisServer, type RunningProcess } from '@hearth/test';
import { repoRoot } from '@hearth/test/conformance/peers';
import { KUBE_MISSING, kubeBinaries, startControlPlane, type ControlPlane } from '@hearth/test/harness/kube';
import { processCpuMicros } from './proc.js';

const CRD = join(repoRoot, 'charts', 'hearth', 'crds', 'function.yaml');
const controllerMain = join(repoRoot, 'controller', 'dist', 'main.js');
const NAMESPACE = 'bench';
const FUNCTIONS_PATH = `/apis/hearth.dev/v1alpha1/namespaces/${NAMESPACE}/functions`;
const GOAL_SECONDS = 60;
const GOAL_RSS_MB = 250;

interface Options {
  functions: number;
  createConcurrency: number;
  redis: boolean;
  controllerManager: boolean;
  timeoutSeconds: number;
  settleSeconds: number;
  /** Where `node --cpu-prof` leaves the controller's profile, when asked. */
  cpuProfDir: string | undefined;
  out: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      functions: { type: 'string', default: '1000' },
      'create-concurrency': { type: 'string', default: '16' },
      'no-redis': { type: 'boolean', default: false },
      'controller-manager': { type: 'boolean', default: false },
      timeout: { type: 'string', default: '240' },
      'cpu-prof': { type: 'string' },
      settle: { type: 'string', default: '10' },
      out: { type: 'string' },
    },
  });
  const positive = (name: string, raw: string) => {
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be an integer, got "${raw}"`);
    return value;
  };
  return {
    functions: positive('functions', values.functions),
    createConcurrency: positive('create-concurrency', values['create-concurrency']),
    redis: !values['no-redis'],
    controllerManager: values['controller-manager'],
    timeoutSeconds: positive('timeout', values.timeout),
    settleSeconds: positive('settle', values.settle),
    cpuProfDir: values['cpu-prof'] === undefined ? undefined : resolve(values['cpu-prof']),
    out: values.out,
  };
}

interface FunctionObject {
  metadata: { name: string; generation?: number; resourceVersion?: string };
  status?: {
    observedGeneration?: number;
    revision?: string;
    conditions?: { type: string; status: string; observedGeneration?: number }[];
  };
}

/** The condition this benchmark waits for; see the header. */
function isReconciled(fn: FunctionObject): boolean {
  const status = fn.status;
  const generation = fn.metadata.generation;
  if (!status || generation === undefined || status.observedGeneration !== generation) return false;
  if (!/^[0-9a-f]{10}$/.test(status.revision ?? '')) return false;
  const condition = (type: string) => status.conditions?.find((c) => c.type === type);
  const ready = condition('Ready');
  return (
    condition('CodeReady')?.status === 'True' &&
    ready?.status === 'True' &&
    ready.observedGeneration === generation
  );
}

/** The API server with the harness's admin client certificate, over a few kept-alive connections. */
class ApiClient {
  private readonly tls: RequestOptions;

  constructor(
    private readonly baseUrl: string,
    dir: string,
    connections: number,
  ) {
    this.tls = {
      ca: readFileSync(join(dir, 'ca.crt')),
      cert: readFileSync(join(dir, 'admin.crt')),
      key: readFileSync(join(dir, 'admin.key')),
      agent: new Agent({ keepAlive: true, maxSockets: connections }),
    };
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const req = request(
        `${this.baseUrl}${path}`,
        { ...this.tls, method, headers: { 'content-type': 'application/json' } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            if ((res.statusCode ?? 0) >= 300)
              reject(new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 500)}`));
            else resolve(JSON.parse(text) as T);
          });
        },
      );
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  /**
   * Follows a collection: a list, then a watch from its resourceVersion, again and again until
   * stopped (a watch the server ends is resumed with a fresh list). Every object seen goes to
   * `onObject`, in order.
   */
  follow(path: string, onObject: (o: FunctionObject) => void): { stop(): void } {
    let stopped = false;
    let current: ReturnType<typeof request> | undefined;
    const loop = async () => {
      while (!stopped) {
        try {
          const list = await this.call<{ metadata: { resourceVersion: string }; items: FunctionObject[] }>(
            'GET',
            path,
          );
          list.items.forEach(onObject);
          await new Promise<void>((resolve) => {
            current = request(
              `${this.baseUrl}${path}?watch=true&resourceVersion=${list.metadata.resourceVersion}`,
              { ...this.tls, agent: false },
              (res) => {
                let buffered = '';
                res.on('data', (c: Buffer) => {
                  buffered += c.toString();
                  let newline: number;
                  while ((newline = buffered.indexOf('\n')) >= 0) {
                    const line = buffered.slice(0, newline);
                    buffered = buffered.slice(newline + 1);
                    if (!line.trim()) continue;
                    const event = JSON.parse(line) as { type: string; object: FunctionObject };
                    if (event.type === 'ADDED' || event.type === 'MODIFIED') onObject(event.object);
                  }
                });
                res.on('end', resolve);
                res.on('error', () => resolve());
              },
            );
            current.on('error', () => resolve());
            current.end();
          });
        } catch {
          if (!stopped) await sleep(500);
        }
      }
    };
    void loop();
    return {
      stop() {
        stopped = true;
        current?.destroy();
      },
    };
  }
}

/** The largest VmRSS seen, sampled every 100 ms, and the kernel's high-water mark (VmHWM). */
class RssSampler {
  private peakKb = 0;
  private hwmKb = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number) {
    this.timer = setInterval(() => this.sample(), 100);
  }

  sample(): void {
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
      this.peakKb = Math.max(this.peakKb, kb('VmRSS'));
      this.hwmKb = Math.max(this.hwmKb, kb('VmHWM'));
    } catch {
      // the process is gone, or there is no /proc
    }
  }

  stop(): { peakMb: number; hwmMb: number } {
    this.sample();
    clearInterval(this.timer);
    return { peakMb: this.peakKb / 1024, hwmMb: this.hwmKb / 1024 };
  }
}

/** CPU seconds used so far by a process; NaN when it is gone. */
const cpuSeconds = (pid: number) => (processCpuMicros(pid) ?? NaN) / 1e6;

/** The pid of the process whose command line has `program` and `fragment` (the harness's etcd and kube-apiserver). */
function pidOf(program: string, fragment: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.split('\0')[0]!.endsWith(program) && cmdline.includes(fragment)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

function functionManifest(index: number) {
  return {
    apiVersion: 'hearth.dev/v1alpha1',
    kind: 'Function',
    metadata: { name: `fn-${String(index).padStart(4, '0')}`, namespace: NAMESPACE },
    spec: {
      runtime: 'nodejs20.x',
      handler: 'index.handler',
      code: {
        inline: { files: { 'index.mjs': `export const handler = async (e) => ({ n: ${index}, e })` } },
      },
    },
  };
}

/** Runs `task` for 0..count-1 with at most `concurrency` at a time. */
async function pool(count: number, concurrency: number, task: (i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

export async function main(argv: string[]): Promise<void> {
  const options = parseOptions(argv);
  if (!kubeBinaries()) throw new Error(KUBE_MISSING);
  let cp: ControlPlane | undefined;
  let redis: RedisServer | undefined;
  let controller: RunningProcess | undefined;
  let watch: { stop(): void } | undefined;
  try {
    console.error('starting etcd and kube-apiserver');
    cp = await startControlPlane({ crds: [CRD], controllerManager: options.controllerManager });
    await cp.kubectl(['create', 'namespace', NAMESPACE]);
    if (options.redis) redis = await startRedis();
    const api = new ApiClient(cp.url, cp.dir, options.createConcurrency);

    controller = await startProcess({
      name: 'hearth-controller',
      command: process.execPath,
      args: [
        ...(options.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`] : []),
        controllerMain,
      ],
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        KUBECONFIG: cp.kubeconfig,
        HEARTH_BACKEND: 'kubernetes',
        HEARTH_LOG_LEVEL: 'info',
        HEARTH_METRICS_PORT: '0',
        HEARTH_METRICS_HOST: '127.0.0.1',
        ...(redis ? { HEARTH_REDIS_URL: redis.url } : {}),
      },
    });
    const running = controller;
    const exited = () => running.child.exitCode !== null || running.child.signalCode !== null;
    const rss = new RssSampler(controller.pid);
    // Leading first, so the time measured is reconciling, not the election.
    const leaseDeadline = Date.now() + 60_000;
    for (;;) {
      const lease = await api
        .call<{ spec?: { holderIdentity?: string } }>(
          'GET',
          '/apis/coordination.k8s.io/v1/namespaces/default/leases/hearth-controller',
        )
        .catch(() => undefined);
      if (lease?.spec?.holderIdentity) break;
      if (exited()) throw new Error(`the controller exited:\n${controller.logs()}`);
      if (Date.now() > leaseDeadline)
        throw new Error(`the controller never took the lease:\n${controller.logs()}`);
      await sleep(100);
    }
    const idleRss = readFileSync(`/proc/${controller.pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)/m)?.[1];

    const reconciledAt = new Map<string, number>();
    let start = 0;
    watch = api.follow(FUNCTIONS_PATH, (fn) => {
      if (start > 0 && isReconciled(fn) && !reconciledAt.has(fn.metadata.name))
        reconciledAt.set(fn.metadata.name, performance.now() - start);
    });
    await sleep(500); // the watch is open before the first create

    // Where the CPU went, for reading the numbers on a shared machine.
    const cpuUsers = [
      { name: 'controller', pid: controller.pid },
      { name: 'kube-apiserver', pid: pidOf('kube-apiserver', cp.dir) },
      { name: 'etcd', pid: pidOf('etcd', cp.dir) },
    ];
    const cpuBefore = cpuUsers.map((u) => (u.pid === undefined ? NaN : cpuSeconds(u.pid)));
    console.error(`creating ${options.functions} Functions, ${options.createConcurrency} at a time`);
    start = performance.now();
    await pool(options.functions, options.createConcurrency, async (i) => {
      await api.call('POST', FUNCTIONS_PATH, functionManifest(i));
    });
    const createdSeconds = (performance.now() - start) / 1000;
    console.error(`created in ${createdSeconds.toFixed(1)} s`);

    const deadline = start + options.timeoutSeconds * 1000;
    let lastReport = 0;
    while (reconciledAt.size < options.functions && performance.now() < deadline) {
      if (exited()) throw new Error(`the controller exited:\n${controller.logs().slice(-4000)}`);
      if (performance.now() - lastReport > 5000) {
        lastReport = performance.now();
        console.error(`  ${((lastReport - start) / 1000).toFixed(0)} s: ${reconciledAt.size} reconciled`);
      }
      await sleep(100);
    }
    const busySeconds = (performance.now() - start) / 1000;
    const cpuUsed = cpuUsers.map(
      (u, i) => `${u.name} ${u.pid === undefined ? '-' : (cpuSeconds(u.pid) - cpuBefore[i]!).toFixed(1)}`,
    );
    const allSeconds =
      reconciledAt.size === options.functions ? Math.max(...reconciledAt.values()) / 1000 : undefined;
    // The controller keeps working afterwards (with Redis it reads every function's demand each
    // second): its memory is watched a while longer.
    const controllerPid = cpuUsers[0]!.pid;
    const settleCpuBefore = controllerPid === undefined ? NaN : cpuSeconds(controllerPid);
    await sleep(options.settleSeconds * 1000);
    const settledCpuShare =
      controllerPid === undefined
        ? '-'
        : `${(((cpuSeconds(controllerPid) - settleCpuBefore) / options.settleSeconds) * 100).toFixed(1)}% of a CPU`;
    const memory = rss.stop();
    watch.stop();

    // What the status claims, checked against the objects.
    const names = async (kind: string) =>
      new Set(
        (
          await api.call<{ items: { metadata: { name: string } }[] }>(
            'GET',
            `${kind}?labelSelector=${encodeURIComponent('app.kubernetes.io/managed-by=hearth-controller')}`,
          )
        ).items.map((o) => o.metadata.name),
      );
    const [deployments, services] = await Promise.all([
      names(`/apis/apps/v1/namespaces/${NAMESPACE}/deployments`),
      names(`/api/v1/namespaces/${NAMESPACE}/services`),
    ]);
    const list = await api.call<{ items: FunctionObject[] }>('GET', FUNCTIONS_PATH);
    const complete = list.items.filter((fn) => {
      const object = `${fn.metadata.name}-${fn.status?.revision}`;
      return isReconciled(fn) && deployments.has(object) && services.has(object);
    }).length;

    const quantile = (q: number) => {
      const times = [...reconciledAt.values()].sort((a, b) => a - b);
      const index = Math.ceil(q * options.functions) - 1;
      return index < times.length ? `${(times[index]! / 1000).toFixed(1)} s` : '-';
    };
    // Unfinished, the rate is what was reconciled within the time allowed.
    const rate = reconciledAt.size / (allSeconds ?? options.timeoutSeconds);
    const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');
    const peakMb = Math.max(memory.peakMb, memory.hwmMb);
    const lines = [
      `### Controller scale: ${options.functions} Functions created at once (${options.createConcurrency} creates in flight), kubernetes backend, ${redis ? 'with Redis (as the chart runs it)' : 'without Redis'}${options.controllerManager ? ', kube-controller-manager running' : ''}`,
      '',
      '| measure | value |',
      '| --- | ---: |',
      `| all created (API server accepted the last) | ${createdSeconds.toFixed(1)} s |`,
      `| 50% / 90% / 100% reconciled | ${quantile(0.5)} / ${quantile(0.9)} / ${allSeconds === undefined ? `not within ${options.timeoutSeconds} s (${reconciledAt.size} reconciled)` : `${allSeconds.toFixed(1)} s`} |`,
      `| rate | ${rate.toFixed(1)} functions/s |`,
      `| Functions whose Deployment and Service exist and status is reconciled, at the end | ${complete} / ${options.functions} |`,
      `| controller RSS: idle before / peak (VmRSS sampled, VmHWM) | ${idleRss ? (Number(idleRss) / 1024).toFixed(0) : '-'} MB / ${memory.peakMb.toFixed(0)} MB, ${memory.hwmMb.toFixed(0)} MB |`,
      '',
      '| goal | Hearth | |',
      '| --- | --- | --- |',
      `| all reconciled within ${GOAL_SECONDS} s | ${allSeconds === undefined ? 'unfinished' : `${allSeconds.toFixed(1)} s (${(allSeconds / GOAL_SECONDS).toFixed(2)}x the limit)`} | ${verdict(allSeconds !== undefined && allSeconds <= GOAL_SECONDS)} |`,
      `| controller RSS under ${GOAL_RSS_MB} MB | ${peakMb.toFixed(0)} MB (${(peakMb / GOAL_RSS_MB).toFixed(2)}x the limit) | ${verdict(peakMb < GOAL_RSS_MB)} |`,
      '',
    ];
    const cpus = availableParallelism();
    const failedReconciles = controller.logs().match(/reconcile failed/g)?.length ?? 0;
    lines.splice(
      lines.indexOf('') + 7,
      0,
      `| reconciles that failed (and were retried), from the controller's log | ${failedReconciles} |`,
      `| CPU seconds used from the first create to the end of the wait (${busySeconds.toFixed(1)} s of wall time, ${cpus} CPUs) | ${cpuUsed.join(', ')} |`,
      `| controller CPU afterwards, with every Function reconciled and idle (${options.settleSeconds} s) | ${settledCpuShare} |`,
    );
    if (process.env.HEARTH_BENCH_LOGS === '1') console.error(controller.logs().slice(-20_000));
    const markdown = lines.join('\n');
    process.stdout.write(markdown);
    if (options.out) await writeFile(options.out, markdown);
  } finally {
    watch?.stop();
    await controller?.stop('SIGTERM', 10_000);
    await redis?.stop();
    await cp?.stop();
  }
}
