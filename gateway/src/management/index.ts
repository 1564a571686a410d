import type { Router } from 'express';
import type { Redis } from 'ioredis';
import type { Authenticator } from '../auth/authenticate.js';
import type { GatewayConfig, ManagementConfig } from '../config.js';
import type { Discovery } from '../core/discovery.js';
import { DirectoryCodeStore, type CodeStore } from '../code-store/store.js';
import type { FunctionBackend } from './backend.js';
import { RedisFunctionLogs, type FunctionLogSource } from './function-logs.js';
import type { MappingBackend } from './event-source-mappings.js';
import { ManifestDirectoryBackend, ManifestMappingBackend } from './manifest-backend.js';
import { managementRoutes } from './routes.js';

export interface Management {
  readonly router: Router;
}

/** The management API over its backend (manifest files or Kubernetes) and its code store (a directory or a bucket). */
export function createManagement(
  settings: ManagementConfig,
  config: Pick<GatewayConfig, 'accountConcurrency' | 'region' | 'accountId'>,
  parts: { discovery: Discovery; authenticator: Authenticator; redis: Redis },
): Management {
  const { backend: choice } = settings;
  const backend: FunctionBackend =
    choice.kind === 'manifests'
      ? new ManifestDirectoryBackend(choice.functionsDir, parts.discovery)
      : // Loaded on first use: process mode never needs the Kubernetes client.
        lazyBackend(
          async () => new (await import('./kube-backend.js')).KubernetesFunctionBackend(choice.namespace),
        );
  const mappings: MappingBackend =
    choice.kind === 'manifests'
      ? new ManifestMappingBackend(choice.functionsDir, parts.redis)
      : lazyBackend(
          async () => new (await import('./kube-backend.js')).KubernetesMappingBackend(choice.namespace),
        );
  const logs: FunctionLogSource =
    choice.kind === 'manifests'
      ? new RedisFunctionLogs(parts.redis, backend)
      : lazyLogs(async () => new (await import('./pod-logs.js')).KubernetesFunctionLogs(choice.namespace));
  const store = settings.codeStore;
  const codeStore: CodeStore =
    store.kind === 'directory'
      ? new DirectoryCodeStore(store.dir, settings.codeStoreBytes)
      : // Loaded on first use: the S3 client takes a third of a second to load, and hearth dev never needs it.
        lazyCodeStore(
          settings.codeStoreBytes,
          async () =>
            new (await import('../code-store/s3-store.js')).S3CodeStore(store, settings.codeStoreBytes),
        );
  const router = managementRoutes({
    backend,
    mappings,
    codeStore,
    codeBaseUrl: settings.codeBaseUrl,
    authenticator: parts.authenticator,
    logs,
    discovery: parts.discovery,
    accountConcurrency: config.accountConcurrency,
    context: { region: config.region, accountId: config.accountId },
  });
  return { router };
}

/** The calls of a management backend; each waits for the backend to load on first use. */
interface CrudBackend<R, W> {
  list(): Promise<R[]>;
  get(name: string): Promise<R | undefined>;
  create(resource: W): Promise<void>;
  replace(resource: W): Promise<void>;
  delete(name: string): Promise<void>;
}

function lazyBackend<R, W>(load: () => Promise<CrudBackend<R, W>>): CrudBackend<R, W> {
  let loaded: Promise<CrudBackend<R, W>> | undefined;
  const backend = () => (loaded ??= load());
  return {
    list: async () => (await backend()).list(),
    get: async (name) => (await backend()).get(name),
    create: async (resource) => (await backend()).create(resource),
    replace: async (resource) => (await backend()).replace(resource),
    delete: async (name) => (await backend()).delete(name),
  };
}

function lazyLogs(load: () => Promise<FunctionLogSource>): FunctionLogSource {
  let loaded: Promise<FunctionLogSource> | undefined;
  return { read: async (name, options) => (await (loaded ??= load())).read(name, options) };
}

function lazyCodeStore(quotaBytes: number, load: () => Promise<CodeStore>): CodeStore {
  let loaded: Promise<CodeStore> | undefined;
  const store = () => (loaded ??= load());
  return {
    quotaBytes,
    has: async (sha256) => (await store()).has(sha256),
    put: async (zip) => (await store()).put(zip),
    openRead: async (sha256) => (await store()).openRead(sha256),
    usedBytes: async () => (await store()).usedBytes(),
    list: async () => (await store()).list(),
    sweep: async (referenced) => (await store()).sweep(referenced),
  };
}
