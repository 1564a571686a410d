import type { Router } from 'express';
import type { Redis } from 'ioredis';
import type { Authenticator } from '../auth/authenticate.js';
import type { GatewayConfig, ManagementConfig } from '../config.js';
import type { Discovery } from '../core/discovery.js';
import { CodeStore } from '../code-store/store.js';
import { ManifestDirectoryBackend } from './manifest-backend.js';
import { managementRoutes } from './routes.js';

export interface Management {
  readonly router: Router;
}

/** The management API over the process backend (manifest files) and a code store directory. */
export function createManagement(
  settings: ManagementConfig,
  config: Pick<GatewayConfig, 'accountConcurrency' | 'region' | 'accountId'>,
  parts: { discovery: Discovery; authenticator: Authenticator; redis: Redis },
): Management {
  const codeStore = new CodeStore(settings.codeStoreDir, settings.codeStoreBytes);
  const router = managementRoutes({
    backend: new ManifestDirectoryBackend(settings.functionsDir, parts.discovery),
    codeStore,
    codeBaseUrl: settings.codeBaseUrl,
    authenticator: parts.authenticator,
    redis: parts.redis,
    accountConcurrency: config.accountConcurrency,
    context: { region: config.region, accountId: config.accountId },
  });
  return { router };
}
