#!/usr/bin/env node
// The controller's process: settings from the environment, one backend, graceful stop on signals.
//   HEARTH_BACKEND        process (default) | kubernetes
//   HEARTH_REDIS_URL      Redis of the registry (process backend); default redis://127.0.0.1:6379
//   HEARTH_FUNCTIONS_DIR  manifest directory (process backend); default ./functions
//   HEARTH_NAMESPACE      namespace of the leader Lease (kubernetes backend); default default
//   HEARTH_GATEWAY_URL    the gateway's base URL, shown in status.url (kubernetes backend)
//   HEARTH_RUNTIME_IMAGES JSON {"nodejs20.x": "<image>", ...} over the default runtime images (kubernetes backend)
//   HEARTH_IMAGE_PULL_POLICY  Always | IfNotPresent | Never for function pods (kubernetes backend)
//   HEARTH_LOG_LEVEL      pino level; default info
import { pino } from 'pino';
import { startProcessController } from './process-backend.js';

const logger = pino({ name: 'hearth-controller', level: process.env.HEARTH_LOG_LEVEL ?? 'info' });
const backend = process.env.HEARTH_BACKEND ?? 'process';

async function start(): Promise<{ stop(): Promise<void> }> {
  if (backend === 'process') {
    return startProcessController({
      redisUrl: process.env.HEARTH_REDIS_URL ?? 'redis://127.0.0.1:6379',
      functionsDir: process.env.HEARTH_FUNCTIONS_DIR ?? 'functions',
      logger,
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
      },
      logger,
      redisUrl: process.env.HEARTH_REDIS_URL,
      gatewayUrl: process.env.HEARTH_GATEWAY_URL,
      leaseNamespace: process.env.HEARTH_NAMESPACE,
    });
  }
  throw new Error(`HEARTH_BACKEND: must be process or kubernetes, got "${backend}"`);
}

let controller: { stop(): Promise<void> };
try {
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
    controller.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'stop failed');
        process.exit(1);
      },
    );
  });
}
