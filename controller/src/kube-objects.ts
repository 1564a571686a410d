import { createHash } from 'node:crypto';
import type {
  V1ConfigMap,
  V1Container,
  V1Deployment,
  V1OwnerReference,
  V1Pod,
  V1Service,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import {
  API_GROUP,
  API_VERSION,
  CodeArchiveLimits,
  Limits,
  imageCommand,
  quantityToMb,
  ShimEnv,
  concurrencyEnv,
  shimEnvName,
  ShimPaths,
  type FunctionResource,
} from '@hearth/api';
import { canonicalJson } from './revision.js';

/** Labels every object made for a function carries; the gateway selects pods by them. */
export const Labels = {
  function: `${API_GROUP}/function`,
  revision: `${API_GROUP}/revision`,
  managedBy: 'app.kubernetes.io/managed-by',
} as const;

/** The hash of what the controller last applied to an object, so that an unchanged object is not applied again. */
export const APPLIED_HASH_ANNOTATION = `${API_GROUP}/applied-hash`;

export const MANAGER = 'hearth-controller';
export const SHIM_PORT = 8080;
export const CODE_DIR = '/var/task';
const STATE_DIR = '/var/hearth';
/** The function's /tmp: a size-limited emptyDir, which the shim watches and wipes (HEARTH_TMP_DIR). */
const TMP_DIR = '/tmp';
/** Room for the shim's own scratch files, logs and the container layer beside the user's /tmp. */
const STORAGE_OVERHEAD_MB = 256;
/** A non-root user that exists in no image on purpose: function code owns nothing but /tmp. */
const RUN_AS = 65532;
/** The init container that fetches `spec.code.archive` into the code volume. */
export const CODE_FETCHER = 'fetch-code';
/** Where the code volume sits in the fetcher; the code itself goes in a subdirectory (see fetch-code.ts). */
const FETCH_MOUNT = '/code';
const FETCHED_CODE_SUBDIR = 'task';
/** The largest unpacked archive, as a volume size. */
const ARCHIVE_CODE_MB = Math.ceil(CodeArchiveLimits.unzippedBytes / (1 << 20));
/** The init container that copies the shim into the pod of a function whose code is its own image. */
export const SHIM_INSTALLER = 'install-shim';
/** Where the provided runtime's image keeps the shim and a Node that runs in any image (images/build.sh). */
const SHIM_SOURCE_DIR = '/opt/hearth';
/** Where the copied shim sits in an image function's container. */
const SHIM_INSTALL_DIR = '/hearth-shim';
/** Room for the copied shim and its Node (about 120 MB) in an image function's pod. */
const SHIM_INSTALL_MB = 256;

export interface KubeBackendOptions {
  /** The runtime shim image for each Lambda runtime identifier. */
  images: Record<string, string>;
  /** The shim's entrypoint inside that image. */
  shimCommand: string[];
  /** The image of the init container fetching archive code: the controller's, which has fetch-code.js. */
  codeFetcherImage: string;
  codeFetcherCommand: string[];
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
}

export const defaultKubeOptions: KubeBackendOptions = {
  images: {
    'nodejs20.x': 'localhost/hearth-runtime-nodejs20:0.1.0',
    'nodejs22.x': 'localhost/hearth-runtime-nodejs22:0.1.0',
    'python3.11': 'localhost/hearth-runtime-python311:0.1.0',
    'provided.al2023': 'localhost/hearth-runtime-provided:0.1.0',
  },
  shimCommand: ['node', '/opt/hearth/runtime-shim/dist/main.cjs'],
  codeFetcherImage: 'localhost/hearth-controller:0.1.0',
  codeFetcherCommand: ['node', '/opt/hearth/controller/dist/fetch-code.js'],
  imagePullPolicy: 'IfNotPresent',
};

/**
 * The name of an object made for one revision: `<function>-<revision>`, cut to a DNS label (63
 * characters, starting with a letter, as Service names require) with a hash keeping cut names apart.
 */
export function revisionObjectName(functionName: string, revision: string): string {
  const full = `${functionName}-${revision}`;
  const startsWithLetter = /^[a-z]/.test(full);
  if (full.length <= 63 && startsWithLetter) return full;
  const tag = createHash('sha256').update(functionName).digest('hex').slice(0, 6);
  const room = 63 - 3 - tag.length - revision.length - 2;
  return `fn-${functionName.slice(0, room).replace(/-+$/, '')}-${tag}-${revision}`;
}

export function ownerReference(fn: FunctionResource): V1OwnerReference {
  if (!fn.metadata.uid) throw new Error(`Function ${fn.metadata.name} has no uid yet`);
  return {
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    kind: 'Function',
    name: fn.metadata.name,
    uid: fn.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

function labels(fn: FunctionResource, revision: string): Record<string, string> {
  return { [Labels.function]: fn.metadata.name, [Labels.revision]: revision, [Labels.managedBy]: MANAGER };
}

/** CPU in proportion to memory, as Lambda gives it: one vCPU per 1769 MB, in millicores. */
export function cpuMillis(memoryMb: number): number {
  return Math.ceil((memoryMb * 1000) / Limits.memoryMbPerVcpu);
}

/**
 * Inline code as a ConfigMap of the revision. ConfigMap keys cannot hold `/`, so files are stored
 * under numbered keys and mapped back to their paths in the volume.
 */
export function desiredCodeConfigMap(fn: FunctionResource, revision: string): V1ConfigMap | undefined {
  const files = fn.spec.code.inline?.files;
  if (!files) return undefined;
  const data: Record<string, string> = {};
  Object.keys(files)
    .sort()
    .forEach((path, i) => (data[`f${i}`] = files[path]!));
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: revisionObjectName(fn.metadata.name, revision),
      namespace: fn.metadata.namespace,
      labels: labels(fn, revision),
      ownerReferences: [ownerReference(fn)],
    },
    data,
  };
}

/**
 * Why an image function's pods cannot start their image (pull failures, a bad name), from the
 * kubelet's waiting reason; undefined while none is stuck.
 */
export function imagePullFailure(pods: V1Pod[]): { reason: string; message: string } | undefined {
  for (const pod of pods) {
    const waiting = pod.status?.containerStatuses?.find((s) => s.name === 'function')?.state?.waiting;
    if (!waiting?.reason || !/ImagePull|InvalidImageName|ErrImageNeverPull/.test(waiting.reason)) continue;
    return {
      reason: 'ImagePullFailed',
      message: `${waiting.reason}: ${waiting.message ?? `the image of pod ${pod.metadata?.name} cannot be pulled`}`,
    };
  }
  return undefined;
}

/** What the code fetcher leaves in its termination message: `<reason>: <message>`, within the kubelet's 4 KB. */
export function codeFetchMessage(reason: string, message: string): string {
  return `${reason}: ${message}`.slice(0, 4000);
}

/**
 * Why a revision's archive code cannot be fetched, from the code fetcher's last exit in the
 * revision's pods (the kubelet keeps it while it retries); undefined while none has failed.
 */
export function codeFetchFailure(pods: V1Pod[]): { reason: string; message: string } | undefined {
  for (const pod of pods) {
    const status = pod.status?.initContainerStatuses?.find((s) => s.name === CODE_FETCHER);
    if (!status || status.ready) continue;
    const exit = [status.state?.terminated, status.lastState?.terminated].find((t) => t && t.exitCode !== 0);
    if (!exit) continue;
    const parsed = /^(Archive\w+|InvalidArchive): ([\s\S]*)$/.exec(exit.message?.trim() ?? '');
    if (parsed) return { reason: parsed[1]!, message: parsed[2]! };
    // Killed before it could say why (out of memory, a missing image entry point, ...).
    return {
      reason: 'ArchiveUnavailable',
      message: `the ${CODE_FETCHER} init container of pod ${pod.metadata?.name} exited with code ${exit.exitCode}${exit.reason ? ` (${exit.reason})` : ''}`,
    };
  }
  return undefined;
}

/** The init container that downloads, checks and unpacks `spec.code.archive` before the runtime starts. */
function codeFetcher(
  archive: { url: string; sha256: string },
  options: KubeBackendOptions,
  securityContext: V1Container['securityContext'],
): V1Container {
  return {
    name: CODE_FETCHER,
    image: options.codeFetcherImage,
    imagePullPolicy: options.imagePullPolicy,
    command: options.codeFetcherCommand,
    env: [
      { name: 'HEARTH_CODE_URL', value: archive.url },
      { name: 'HEARTH_CODE_SHA256', value: archive.sha256 },
      { name: 'HEARTH_CODE_DIR', value: `${FETCH_MOUNT}/${FETCHED_CODE_SUBDIR}` },
    ],
    // The controller reads why a fetch failed from here (codeFetchFailure).
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'FallbackToLogsOnError',
    // The zip is held in memory while it is checked: room for the largest one.
    resources: {
      requests: { cpu: '50m', memory: '64Mi' },
      limits: { cpu: '500m', memory: '512Mi', 'ephemeral-storage': `${ARCHIVE_CODE_MB + 64}Mi` },
    },
    securityContext,
    volumeMounts: [{ name: 'code', mountPath: FETCH_MOUNT }],
  };
}

function codeVolume(fn: FunctionResource, revision: string): V1Volume {
  const inline = fn.spec.code.inline?.files;
  if (inline) {
    const items = Object.keys(inline)
      .sort()
      // Inline files carry no modes: executable for all, so that a provided runtime's `bootstrap` runs.
      .map((path, i) => ({ key: `f${i}`, path, mode: 0o555 }));
    return { name: 'code', configMap: { name: revisionObjectName(fn.metadata.name, revision), items } };
  }
  if (fn.spec.code.configMap) {
    return { name: 'code', configMap: { name: fn.spec.code.configMap.name, defaultMode: 0o444 } };
  }
  if (fn.spec.code.archive) {
    return { name: 'code', emptyDir: { sizeLimit: `${ARCHIVE_CODE_MB}Mi` } };
  }
  throw new Error('no code source in the volume: an image function carries its code in its image');
}

/**
 * The init container that copies the shim, and a Node carrying its own loader and libraries, from
 * the provided runtime's image into a volume: the function's own image then runs the shim whatever
 * libc it has, and the shim starts the image's runtime as it would a bootstrap.
 */
function shimInstaller(
  image: string,
  options: KubeBackendOptions,
  securityContext: V1Container['securityContext'],
): V1Container {
  return {
    name: SHIM_INSTALLER,
    image,
    imagePullPolicy: options.imagePullPolicy,
    command: [
      'node',
      '-e',
      `require('node:fs').cpSync(${JSON.stringify(SHIM_SOURCE_DIR)}, ${JSON.stringify(SHIM_INSTALL_DIR)}, { recursive: true })`,
    ],
    resources: {
      requests: { cpu: '50m', memory: '64Mi' },
      limits: { cpu: '500m', memory: '256Mi' },
    },
    securityContext,
    volumeMounts: [{ name: 'shim', mountPath: SHIM_INSTALL_DIR }],
  };
}

/** The copied shim, started with its own loader so that nothing of the image's libc is needed. */
const installedShimCommand = [
  `${SHIM_INSTALL_DIR}/portable/ld.so`,
  '--library-path',
  `${SHIM_INSTALL_DIR}/portable/lib`,
  `${SHIM_INSTALL_DIR}/portable/node`,
  `${SHIM_INSTALL_DIR}/runtime-shim/dist/main.cjs`,
];

/** The Deployment running one revision's warm pool. */
export function desiredDeployment(
  fn: FunctionResource,
  revision: string,
  replicas: number,
  options: KubeBackendOptions = defaultKubeOptions,
): V1Deployment {
  const spec = fn.spec;
  const memoryMb = quantityToMb(spec.memory);
  const storageMb = quantityToMb(spec.ephemeralStorage);
  const runtimeImage = options.images[spec.runtime];
  if (!runtimeImage) throw new Error(`no runtime image configured for ${spec.runtime}`);
  const ownImage = spec.code.image;
  const startImage = ownImage ? imageCommand(spec) : undefined;
  const podLabels = labels(fn, revision);
  const hearthEnv: Record<string, string> = {
    [ShimEnv.functionName]: fn.metadata.name,
    [ShimEnv.revision]: revision,
    [ShimEnv.runtime]: spec.runtime,
    [ShimEnv.handler]: spec.handler,
    [ShimEnv.codeDir]: startImage?.workingDirectory ?? CODE_DIR,
    ...(startImage ? { [ShimEnv.runtimeCommand]: JSON.stringify(startImage.argv) } : {}),
    [ShimEnv.memoryMb]: String(memoryMb),
    [ShimEnv.timeoutSeconds]: String(spec.timeoutSeconds),
    [ShimEnv.ephemeralStorageMb]: String(storageMb),
    [ShimEnv.port]: String(SHIM_PORT),
    [ShimEnv.host]: '0.0.0.0',
    ...concurrencyEnv(spec.concurrency),
    [ShimEnv.stateDir]: STATE_DIR,
    // The kubelet enforces memory and /tmp here; the shim need not try to mount anything.
    HEARTH_ISOLATION: 'portable',
    // Code writes the literal /tmp (the emptyDir below): the shim watches that, not a TMPDIR of its own.
    [ShimEnv.tmpDir]: TMP_DIR,
  };
  const volumes: V1Volume[] = [
    ownImage ? { name: 'shim', emptyDir: { sizeLimit: `${SHIM_INSTALL_MB}Mi` } } : codeVolume(fn, revision),
    { name: 'tmp', emptyDir: { sizeLimit: `${storageMb}Mi` } },
    { name: 'state', emptyDir: { sizeLimit: '64Mi' } },
  ];
  const archive = spec.code.archive;
  const mounts: V1VolumeMount[] = [
    ownImage
      ? { name: 'shim', mountPath: SHIM_INSTALL_DIR, readOnly: true }
      : {
          name: 'code',
          mountPath: CODE_DIR,
          readOnly: true,
          ...(archive ? { subPath: FETCHED_CODE_SUBDIR } : {}),
        },
    { name: 'tmp', mountPath: TMP_DIR },
    { name: 'state', mountPath: STATE_DIR },
  ];
  const probe = (path: string) => ({ httpGet: { path, port: SHIM_PORT } });
  const containerSecurity = {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
  };
  // Unpacked archive code (or the copied shim) lives on the pod's disk too: the limit makes room for it.
  const codeStorageMb = archive ? ARCHIVE_CODE_MB : ownImage ? SHIM_INSTALL_MB : 0;
  const initContainers = archive
    ? [codeFetcher(archive, options, containerSecurity)]
    : ownImage
      ? [shimInstaller(runtimeImage, options, containerSecurity)]
      : [];
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: revisionObjectName(fn.metadata.name, revision),
      namespace: fn.metadata.namespace,
      labels: podLabels,
      ownerReferences: [ownerReference(fn)],
    },
    spec: {
      replicas,
      selector: { matchLabels: { [Labels.function]: fn.metadata.name, [Labels.revision]: revision } },
      template: {
        metadata: { labels: podLabels },
        spec: {
          // Functions talk to nothing in the cluster by default and get no API credentials.
          automountServiceAccountToken: false,
          // Service links would leak into the function's environment, which Lambda keeps clean.
          enableServiceLinks: false,
          // A draining instance finishes its in-flight call (up to the timeout) before it goes.
          terminationGracePeriodSeconds: spec.timeoutSeconds + 10,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: RUN_AS,
            runAsGroup: RUN_AS,
            fsGroup: RUN_AS,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          ...(initContainers.length ? { initContainers } : {}),
          containers: [
            {
              name: 'function',
              image: ownImage ?? runtimeImage,
              imagePullPolicy: options.imagePullPolicy,
              command: ownImage ? installedShimCommand : options.shimCommand,
              ports: [{ name: 'invoke', containerPort: SHIM_PORT, protocol: 'TCP' }],
              env: [
                ...Object.entries(hearthEnv).map(([name, value]) => ({ name, value })),
                ...(spec.env ?? []).map(
                  (e) => ({ ...e, name: shimEnvName(e.name) }) as { name: string; value?: string },
                ),
              ],
              resources: {
                requests: { memory: `${memoryMb}Mi`, cpu: `${cpuMillis(memoryMb)}m` },
                limits: {
                  memory: `${memoryMb}Mi`,
                  cpu: `${cpuMillis(memoryMb)}m`,
                  'ephemeral-storage': `${storageMb + STORAGE_OVERHEAD_MB + codeStorageMb}Mi`,
                },
              },
              readinessProbe: { ...probe(ShimPaths.readyz), periodSeconds: 1, failureThreshold: 1 },
              livenessProbe: { ...probe(ShimPaths.healthz), periodSeconds: 10, failureThreshold: 3 },
              securityContext: containerSecurity,
              volumeMounts: mounts,
            },
          ],
          volumes,
        },
      },
    },
  };
}

/** The Service of one revision: its EndpointSlices tell the gateway which pods are ready. */
export function desiredService(fn: FunctionResource, revision: string): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: revisionObjectName(fn.metadata.name, revision),
      namespace: fn.metadata.namespace,
      labels: labels(fn, revision),
      ownerReferences: [ownerReference(fn)],
    },
    spec: {
      selector: { [Labels.function]: fn.metadata.name, [Labels.revision]: revision },
      ports: [{ name: 'invoke', port: SHIM_PORT, targetPort: SHIM_PORT, protocol: 'TCP' }],
    },
  };
}

/** The object with its own hash in APPLIED_HASH_ANNOTATION (the hash covers everything else in it). */
export function withAppliedHash<T extends { metadata?: { annotations?: Record<string, string> } }>(
  object: T,
): T {
  const hash = createHash('sha256').update(canonicalJson(object)).digest('hex').slice(0, 16);
  const metadata = {
    ...object.metadata,
    annotations: { ...object.metadata?.annotations, [APPLIED_HASH_ANNOTATION]: hash },
  };
  return { ...object, metadata };
}

/**
 * Whether what the cache shows of an object is what `desired` (from withAppliedHash) asks for:
 * it carries the same hash and nobody changed its replicas since.
 */
export function isApplied(
  current: { metadata?: { annotations?: Record<string, string> }; spec?: { replicas?: number } } | undefined,
  desired: { metadata?: { annotations?: Record<string, string> }; spec?: { replicas?: number } },
): boolean {
  const hash = desired.metadata?.annotations?.[APPLIED_HASH_ANNOTATION];
  return (
    hash !== undefined &&
    current?.metadata?.annotations?.[APPLIED_HASH_ANNOTATION] === hash &&
    current.spec?.replicas === desired.spec?.replicas
  );
}
