import { createServer } from 'node:http';
import type { Server } from 'node:net';
import express, { type Express } from 'express';
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import type { GatewayConfig } from './config.js';
import type { Discovery } from './core/discovery.js';
import { GatewayError } from './core/errors.js';
import { coalesceWrites } from './core/redis-writes.js';
import { Authenticator } from './auth/authenticate.js';
import { ConcurrencyLeases } from './admission/concurrency.js';
import { RedisDiscovery } from './discovery/redis.js';
import { InstanceRouter } from './routing/router.js';
import { DemandReporter } from './routing/demand.js';
import { ShimClient } from './invoke/shim-client.js';
import { LocalInvoker } from './invoke/local-invoker.js';
import { GatewayMetrics } from './metrics.js';
import { assignRequestId, invokeRoutes } from './http/invoke-routes.js';
import { authenticateRequest } from './http/authenticate-middleware.js';
import { errorHandler } from './http/errors.js';
import { createFront } from './http/front.js';
import { createManagement } from './management/index.js';
import { createPushSources } from './event-sources/index.js';
import {
  createAsyncQueue,
  createDlqRouter,
  startWorkers,
  type AsyncQueue,
  type AsyncWorkers,
  type BacklogLimits,
} from './async/index.js';

/** How long an idle client connection stays open (Node's own default is 5 s). */
const KEEP_ALIVE_MS = 65_000;

export interface GatewayOverrides {
  /** Instead of RedisDiscovery (tests, or Kubernetes discovery). */
  discovery?: Discovery;
  logger?: Logger;
  /** Passed to the async workers (e.g. short retry delays in tests). */
  workerOptions?: Partial<Parameters<typeof startWorkers>[0]>;
  /** Per-function async backlog limits (HEARTH_ASYNC_MAX_DEPTH, HEARTH_ASYNC_MAX_OLDEST_AGE_SECONDS). */
  backlogLimits?: Partial<BacklogLimits>;
}

export interface Gateway {
  readonly app: Express;
  /** Not listening yet: the caller listens (main.ts, or a test on port 0). */
  readonly server: Server;
  readonly invoker: LocalInvoker;
  readonly metrics: GatewayMetrics;
  readonly discovery: Discovery;
  /** Connects Redis, loads discovery and starts background loops; /healthz answers 200 after it. */
  start(): Promise<void>;
  /** Stops taking calls, lets running ones finish, gives concurrency leases back. */
  close(): Promise<void>;
}

/** Builds the gateway for `config.role`: the HTTP side, the async workers, or both. */
export function createGateway(config: GatewayConfig, overrides: GatewayOverrides = {}): Gateway {
  const logger = overrides.logger ?? pino({ name: 'hearth-gateway', level: config.logLevel });
  const reportRedisError = (error: unknown) => logger.warn({ err: error }, 'redis command failed');
  // No auto-pipelining: it holds a batch back while the previous one awaits its replies, so an
  // admission would wait behind the release of the call before it (two round trips instead of
  // one). Commands leave within the event-loop turn they are issued in, those of one turn in one
  // write (coalesceWrites); Redis runs them in order, so a release lands ahead of any later
  // admission.
  const redis = new Redis(config.redisUrl, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
  });
  coalesceWrites(redis);
  redis.on('error', (error) => logger.debug({ err: error }, 'redis connection error'));
  const subscriber = overrides.discovery ? undefined : new Redis(config.redisUrl, { lazyConnect: true });
  subscriber?.on('error', (error) => logger.debug({ err: error }, 'redis subscriber connection error'));
  const discovery =
    overrides.discovery ?? new RedisDiscovery(redis, subscriber!, config.discoveryResyncMs, reportRedisError);

  const router = new InstanceRouter(discovery, {
    coldStartBudgetMs: config.coldStartBudgetMs,
    onWaiting: (name) => demand.signalWaiting(name),
  });
  const demand = new DemandReporter(
    redis,
    config.gatewayId,
    config.demandReportMs,
    (reset) => router.load(reset),
    reportRedisError,
  );
  const leases = new ConcurrencyLeases(redis, config.gatewayId, config.leaseTtlMs, reportRedisError);
  const shims = new ShimClient();
  const metrics = new GatewayMetrics({
    load: () => router.load(),
    instanceCounts: () => router.instanceCounts(),
  });
  const invoker = new LocalInvoker({
    discovery,
    router,
    leases,
    shims,
    metrics,
    logger,
    accountConcurrency: config.accountConcurrency,
    coldStartBudgetMs: config.coldStartBudgetMs,
    region: config.region,
    accountId: config.accountId,
  });
  const authenticator = new Authenticator(config.auth);
  const servesHttp = config.role !== 'worker';
  const runsWorkers = config.role !== 'http';
  const events: AsyncQueue | undefined = servesHttp
    ? createAsyncQueue({
        redisUrl: config.redisUrl,
        discovery,
        maxPayloadBytes: config.asyncPayloadBytes,
        ...(overrides.backlogLimits ? { limits: overrides.backlogLimits } : {}),
        metricsRegistry: metrics.registry,
        logger,
        region: config.region,
        accountId: config.accountId,
      })
    : undefined;
  const pushSources = events
    ? createPushSources({
        redis,
        redisUrl: config.redisUrl,
        resyncMs: config.discoveryResyncMs,
        invoker,
        events,
        authenticator,
        metricsRegistry: metrics.registry,
        syncPayloadBytes: config.syncPayloadBytes,
        region: config.region,
        accountId: config.accountId,
        logger,
        onRedisError: reportRedisError,
      })
    : undefined;
  let workers: AsyncWorkers | undefined;
  let ready = false;
  const management =
    config.management && servesHttp
      ? createManagement(config.management, config, { discovery, authenticator, redis })
      : undefined;

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.get('/healthz', (_req, res) => {
    res.status(ready ? 200 : 503).json({ status: ready ? 'ok' : 'starting', role: config.role });
  });
  app.get('/metrics', async (_req, res) => {
    res.setHeader('Content-Type', metrics.registry.contentType);
    res.end(await metrics.registry.metrics());
  });
  app.use(assignRequestId);
  const invoke = servesHttp
    ? invokeRoutes({
        invoker,
        authenticator,
        metrics,
        events,
        syncPayloadBytes: config.syncPayloadBytes,
        asyncPayloadBytes: config.asyncPayloadBytes,
        logger,
      })
    : undefined;
  if (invoke) {
    app.use(invoke.router);
    // Before the DLQ's authentication, which would read (and cap at 1 MB) every body it sees.
    if (management) app.use(management.router);
    // HTTP routes take only paths the gateway does not serve itself, ahead of the DLQ's
    // authentication below, which would read (and cap at 1 MB) every body that reaches it.
    if (pushSources) app.use(pushSources.bucketNotifications, pushSources.httpRoutes);
    if (events) app.use(authenticateRequest(authenticator), createDlqRouter(events.deadLetters));
  }
  app.use((req) => {
    throw new GatewayError('ResourceNotFoundException', `No operation at ${req.method} ${req.path}.`);
  });
  app.use(errorHandler(logger));

  // Invoke calls skip Express (see InvokeRoutes.fastPath); everything else goes through it.
  const nodeServer = createServer({ keepAliveTimeout: KEEP_ALIVE_MS }, (req, res) => {
    if (!invoke?.fastPath(req, res)) app(req, res);
  });
  // A client that sends garbage gets a plain 400 from Node; the gateway goes on.
  nodeServer.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  // Invoke calls skip Node's HTTP server too, on the connections whose calls are all Invokes.
  const front = invoke
    ? createFront({ nodeServer, invoke, bodyLimit: config.syncPayloadBytes, idleTimeoutMs: KEEP_ALIVE_MS })
    : undefined;
  const server: Server = front?.server ?? nodeServer;
  const closeIdleConnections = () => {
    nodeServer.closeIdleConnections();
    front?.closeIdleConnections();
  };

  return {
    app,
    server,
    invoker,
    metrics,
    discovery,
    async start() {
      await redis.connect();
      await subscriber?.connect();
      await discovery.start();
      await pushSources?.start();
      await leases.start();
      demand.start();
      if (runsWorkers) {
        workers = await startWorkers({
          redisUrl: config.redisUrl,
          invoker,
          discovery,
          ...(events ? { asyncQueue: events } : {}),
          metricsRegistry: metrics.registry,
          logger,
          region: config.region,
          accountId: config.accountId,
          ...overrides.workerOptions,
        });
      }
      ready = true;
    },
    async close() {
      ready = false;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // close() only drops connections idle right now; a kept-alive connection whose call is
      // still running becomes idle later and would hold the close for the keep-alive timeout.
      const dropIdle = setInterval(closeIdleConnections, 100);
      closeIdleConnections();
      await closed;
      clearInterval(dropIdle);
      await workers?.stop();
      router.close();
      demand.stop();
      await leases.stop();
      await events?.close();
      await pushSources?.stop();
      await discovery.stop();
      shims.close();
      redis.disconnect();
      subscriber?.disconnect();
    },
  };
}
