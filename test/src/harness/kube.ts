import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, startProcess, type RunningProcess } from './process.js';

const run = promisify(execFile);

/** The versions test/cluster/build-kube.sh builds; keep the two in step. */
export const KUBE_VERSION = process.env.KUBE_VERSION ?? 'v1.34.4';
export const ETCD_VERSION = process.env.ETCD_VERSION ?? 'v3.6.16';

export interface KubeBinaries {
  kubeApiserver: string;
  kubeControllerManager: string;
  etcd: string;
}

/** The cached binaries, or undefined when test/cluster/build-kube.sh has not been run. */
export function kubeBinaries(): KubeBinaries | undefined {
  const cache = process.env.HEARTH_CACHE ?? join(homedir(), '.cache', 'hearth');
  const kubeBin = join(cache, 'kube', KUBE_VERSION, 'bin');
  const binaries = {
    kubeApiserver: join(kubeBin, 'kube-apiserver'),
    kubeControllerManager: join(kubeBin, 'kube-controller-manager'),
    etcd: join(cache, 'etcd', ETCD_VERSION, 'bin', 'etcd'),
  };
  return Object.values(binaries).every((b) => existsSync(b)) ? binaries : undefined;
}

export const KUBE_MISSING = 'kube binaries not built: run test/cluster/build-kube.sh';

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  readonly url: string;
  /** An admin kubeconfig (client certificate in group system:masters). */
  readonly kubeconfig: string;
  readonly dir: string;
  /** Runs kubectl against this control plane; rejects with its stderr on failure. */
  kubectl(args: string[], input?: string): Promise<string>;
  /** Logs of every daemon, for a failing test's message. */
  logs(): string;
  /**
   * Stops kube-apiserver (SIGTERM), waits `downMs`, and starts it again on the same port with the
   * same certificates and etcd; resolves once it is ready. etcd and kube-controller-manager keep
   * running, so what was stored survives, as in a control-plane upgrade or a crashed API server.
   */
  restartApiServer(options?: { downMs?: number }): Promise<void>;
  stop(): Promise<void>;
}

export interface ControlPlaneOptions {
  /** Also run kube-controller-manager (garbage collection, ReplicaSets, service accounts). */
  controllerManager?: boolean;
  /** CRD manifests to apply and wait for in discovery. */
  crds?: string[];
}

async function openssl(dir: string, args: string[]) {
  await run('openssl', args, { cwd: dir });
}

/** A CA, a serving certificate for 127.0.0.1, an admin client certificate, service-account keys. */
async function certificates(dir: string) {
  const days = ['-days', '2'];
  await openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    ...days,
    '-subj',
    '/CN=hearth-test-ca',
  ]);
  const sign = async (name: string, subject: string, ext: string) => {
    await openssl(dir, [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      subject,
    ]);
    await writeFile(join(dir, `${name}.ext`), ext);
    await openssl(dir, [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      ...days,
      '-extfile',
      `${name}.ext`,
    ]);
  };
  await sign(
    'apiserver',
    '/CN=kube-apiserver',
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n',
  );
  await sign('admin', '/O=system:masters/CN=hearth-admin', 'extendedKeyUsage=clientAuth\n');
  await openssl(dir, ['genrsa', '-out', 'sa.key', '2048']);
  await openssl(dir, ['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
}

function kubeconfigYaml(dir: string, url: string): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: { server: "${url}", certificate-authority: "${join(dir, 'ca.crt')}" }
users:
- name: admin
  user: { client-certificate: "${join(dir, 'admin.crt')}", client-key: "${join(dir, 'admin.key')}" }
contexts:
- name: test
  context: { cluster: test, user: admin }
current-context: test
`;
}

/** GET with the admin client certificate; resolves with the status code (0 when unreachable). */
function adminGet(dir: string, url: string, verify = true): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        ca: readFileSync(join(dir, 'ca.crt')),
        rejectUnauthorized: verify,
        cert: readFileSync(join(dir, 'admin.crt')),
        key: readFileSync(join(dir, 'admin.key')),
        timeout: 2000,
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/**
 * Starts etcd and kube-apiserver (and kube-controller-manager if asked) on free loopback ports,
 * everything under one temp dir, in the manner of controller-runtime's envtest.
 */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const binaries = kubeBinaries();
  if (!binaries) throw new Error(KUBE_MISSING);
  const dir = await mkdtemp(join(tmpdir(), 'hearth-kube-'));
  const daemons: RunningProcess[] = [];
  const stop = async () => {
    for (const daemon of daemons.reverse()) await daemon.stop('SIGTERM', 5000);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await certificates(dir);
    const [etcdPort, peerPort, apiPort, kcmPort] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    daemons.push(
      await startProcess({
        name: 'etcd',
        command: binaries.etcd,
        args: [
          '--name=test',
          `--data-dir=${join(dir, 'etcd')}`,
          `--listen-client-urls=${etcdUrl}`,
          `--advertise-client-urls=${etcdUrl}`,
          `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
          `--initial-cluster=test=http://127.0.0.1:${peerPort}`,
          // A test's data need not survive a crash; fsync would only slow every write.
          '--unsafe-no-fsync',
          '--log-level=warn',
        ],
        ready: { url: `${etcdUrl}/health` },
        readyTimeoutMs: 30_000,
      }),
    );
    const url = `https://127.0.0.1:${apiPort}`;
    const apiServerSlot = daemons.length;
    const startApiServer = async () => {
      const apiserver = await startProcess({
        name: 'kube-apiserver',
        command: binaries.kubeApiserver,
        args: [
          `--etcd-servers=${etcdUrl}`,
          `--secure-port=${apiPort}`,
          '--bind-address=127.0.0.1',
          '--advertise-address=127.0.0.1',
          `--cert-dir=${join(dir, 'apiserver-certs')}`,
          `--tls-cert-file=${join(dir, 'apiserver.crt')}`,
          `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
          `--client-ca-file=${join(dir, 'ca.crt')}`,
          '--service-cluster-ip-range=198.19.0.0/16',
          '--authorization-mode=RBAC',
          '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
          `--service-account-key-file=${join(dir, 'sa.pub')}`,
          `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
          '--allow-privileged=true',
          // The default Service's endpoints may not be loopback; nothing in a test needs them.
          '--endpoint-reconciler-type=none',
          '--v=0',
        ],
      });
      daemons[apiServerSlot] = apiserver;
      const deadline = Date.now() + 90_000;
      while ((await adminGet(dir, `${url}/readyz`)).status !== 200) {
        if (apiserver.child.exitCode !== null)
          throw new Error(`kube-apiserver exited:\n${apiserver.logs().slice(-4000)}`);
        if (Date.now() > deadline)
          throw new Error(`kube-apiserver not ready in 90 s:\n${apiserver.logs().slice(-4000)}`);
        await sleep(250);
      }
    };
    await startApiServer();
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, kubeconfigYaml(dir, url));
    if (options.controllerManager) {
      daemons.push(
        await startProcess({
          name: 'kube-controller-manager',
          command: binaries.kubeControllerManager,
          args: [
            `--kubeconfig=${kubeconfig}`,
            `--authentication-kubeconfig=${kubeconfig}`,
            `--authorization-kubeconfig=${kubeconfig}`,
            '--leader-elect=false',
            `--secure-port=${kcmPort}`,
            '--bind-address=127.0.0.1',
            `--service-account-private-key-file=${join(dir, 'sa.key')}`,
            `--root-ca-file=${join(dir, 'ca.crt')}`,
            `--cluster-signing-cert-file=${join(dir, 'ca.crt')}`,
            `--cluster-signing-key-file=${join(dir, 'ca.key')}`,
            '--controllers=*',
            '--v=0',
          ],
          // Its serving certificate is self-signed; /healthz needs no client identity.
          ready: {
            check: async () =>
              (await adminGet(dir, `https://127.0.0.1:${kcmPort}/healthz`, false)).status === 200,
          },
          readyTimeoutMs: 60_000,
        }),
      );
    }
    const kubectl = async (args: string[], input?: string) => {
      const child = execFile('kubectl', [`--kubeconfig=${kubeconfig}`, ...args], { maxBuffer: 16 << 20 });
      if (input !== undefined) child.stdin!.end(input);
      else child.stdin!.end();
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      if (code !== 0) throw new Error(stderr.trim() || `kubectl ${args.join(' ')} exited with ${code}`);
      return stdout;
    };
    for (const crd of options.crds ?? []) await kubectl(['apply', '--server-side', '-f', crd]);
    if (options.crds?.length) {
      // A CRD the API server has not given a status yet makes `kubectl wait` fail at once
      // (".status.conditions accessor error: <nil>") instead of waiting: ask again.
      const deadline = Date.now() + 60_000;
      for (;;) {
        try {
          await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
          break;
        } catch (error) {
          if (!/accessor error/.test(String(error)) || Date.now() > deadline) throw error;
          await sleep(250);
        }
      }
    }
    return {
      url,
      kubeconfig,
      dir,
      kubectl,
      logs: () => daemons.map((d) => `--- ${d.name}\n${d.logs().slice(-3000)}`).join('\n'),
      async restartApiServer({ downMs = 0 } = {}) {
        await daemons[apiServerSlot]!.stop('SIGTERM', 5000);
        await sleep(downMs);
        await startApiServer();
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
