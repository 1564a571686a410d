#!/usr/bin/env node
// The controller's process: settings from the environment, one backend, graceful stop on signals.
//   HEARTH_BACKEND        process (default) | kubernetes
//   HEARTH_REDIS_URL      Redis of the registry (process backend); default redis://127.0.0.1:6379
//   HEARTH_FUNCTIONS_DIR  manifest directory (process backend); default ./functions
//   HEARTH_NAMESPACE      namespace of the leader Lease (kubernetes backend); default default
//   HEARTH_DEFAULT_NAMESPACE  Functions here are called by their plain name at the gateway, those of
//                         other namespaces as name.namespace (kubernetes backend); default default
//   HEARTH_GATEWAY_URL    the gateway's base URL: event source mappings invoke functions through it
//                         (both backends); also shown in Function status.url (kubernetes backend)
//   HEARTH_GATEWAY_TOKEN  an API key of the gateway (Bearer), when its auth is on
//   HEARTH_METRICS_PORT   port of GET /metrics and GET /healthz; default 9091; 0 picks a free one (logged)
//   HEARTH_METRICS_HOST   address it listens on; default all interfaces (hearth dev: 127.0.0.1)
//   HEARTH_EVENT_SOURCE_RETRY_BASE_MS  first delay before a stream mapping sends a failed batch again
//   HEARTH_REGION, HEARTH_ACCOUNT_ID   for ARNs in events, as the gateway's; default us-east-1, 000000000000
//   HEARTH_RUNTIME_IMAGES JSON {"nodejs20.x": "<image>", ...} over the default runtime images (kubernetes backend)
//   HEARTH_IMAGE_PULL_POLICY  Always | IfNotPresent | Never for function pods (kubernetes backend)
//   HEARTH_CODE_FETCHER_IMAGE the image of function pods' init container that fetches archive code:
//                         this controller's image (kubernetes backend)
//   HEARTH_DELETED_RETENTION_SECONDS  how long a deleted Function's Redis keys (dead letters, logs,
//                         async queue) are kept (kubernetes backend, with Redis); default 604800 (7 days)
//   HEARTH_LOG_LEVEL      pino level; default info
import { pino } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { EventSourceMetrics } from './event-sources/metrics.js';
import type { EventSourceSettings } from './event-sources/start.js';
import { startMetricsServer, type MetricsServer } from './metrics-server.js';

const logger = pino({ name: 'hearth-controller', level: process.env.HEARTH_LOG_LEVEL ?? 'info' });
const backend = process.env.HEARTH_BACKEND ?? 'process';

/** An integer setting from the environment, failing start with the variable named. */
function integerEnv(
  name: string,
  fallback: number | undefined,
  min: number,
  max: number,
): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name}: must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'hearth_controller_' });

function eventSourceSettings(): EventSourceSettings {
  return {
    gatewayUrl: process.env.HEARTH_GATEWAY_URL || undefined,
    gatewayToken: process.env.HEARTH_GATEWAY_TOKEN || undefined,
    metrics: new EventSourceMetrics(registry),
    retryBaseDelayMs: integerEnv('HEARTH_EVENT_SOURCE_RETRY_BASE_MS', undefined, 1, 3_600_000),
    region: process.env.HEARTH_REGION || undefined,
    accountId: process.env.HEARTH_ACCOUNT_ID || undefined,
  };
}

async function start(): Promise<{ stop(): Promise<void> }> {
  if (backend === 'process') {
    // Loaded only here, as the Kubernetes client is below: each backend's process holds only its own.
    const { startProcessController } = await import('./process-backend.js');
    return startProcessController({
      redisUrl: process.env.HEARTH_REDIS_URL ?? 'redis://127.0.0.1:6379',
      functionsDir: process.env.HEARTH_FUNCTIONS_DIR ?? 'functions',
      logger,
      eventSources: eventSourceSettings(),
    });
  }
  if (backend === 'kubernetes') {
    // Loaded only here: the process backend (hearth dev) never needs the Kubernetes client.
    const { startKubeController } = await import('./kube-backend.js');
    const { defaultKubeOptions } = await import('./kube-objects.js');
    const images = process.env.HEARTH_RUNTIME_IMAGES
      ? (JSON.parse(process.env.HEARTH_RUNTIME_IMAGES) as Record<string, string>)
      : {};
    const pullPolicy = process.env.HEARTH_IMAGE_PULL_POLICY as
      'Always' | 'IfNotPresent' | 'Never' | undefined;
    return startKubeController({
      objects: {
        ...defaultKubeOptions,
        images: { ...defaultKubeOptions.images, ...images },
        ...(pullPolicy ? { imagePullPolicy: pullPolicy } : {}),
        ...(process.env.HEARTH_CODE_FETCHER_IMAGE
          ? { codeFetcherImage: process.env.HEARTH_CODE_FETCHER_IMAGE }
          : {}),
      },
      logger,
      redisUrl: process.env.HEARTH_REDIS_URL,
      gatewayUrl: process.env.HEARTH_GATEWAY_URL,
      leaseNamespace: process.env.HEARTH_NAMESPACE,
      defaultNamespace: process.env.HEARTH_DEFAULT_NAMESPACE || undefined,
      eventSources: eventSourceSettings(),
      // Ten years at most: a larger number is a typo, not a policy.
      deletedRetentionSeconds: integerEnv('HEARTH_DELETED_RETENTION_SECONDS', undefined, 0, 315_360_000),
    });
  }
  throw new Error(`HEARTH_BACKEND: must be process or kubernetes, got "${backend}"`);
}

let controller: { stop(): Promise<void> } | undefined;
let metricsServer: MetricsServer;
try {
  const metricsPort = integerEnv('HEARTH_METRICS_PORT', 9091, 0, 65_535)!;
  metricsServer = await startMetricsServer(
    registry,
    metricsPort,
    process.env.HEARTH_METRICS_HOST || undefined,
    () => controller !== undefined,
  );
  logger.info({ port: metricsServer.port }, 'serving metrics');
  controller = await start();
} catch (error) {
  logger.fatal({ err: error }, 'could not start');
  process.exit(1);
}
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    controller
      .stop()
      .then(() => metricsServer.close())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error({ err: error }, 'stop failed');
          process.exit(1);
        },
      );
  });
}
