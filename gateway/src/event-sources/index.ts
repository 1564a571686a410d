import type { Router, RequestHandler } from 'express';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AsyncQueue } from '../async/index.js';
import type { Authenticator } from '../auth/authenticate.js';
import type { LocalInvoker } from '../invoke/local-invoker.js';
import { bucketNotificationsRouter } from './bucket-route.js';
import { httpRoutes } from './http-routes.js';
import { PushSourceMetrics } from './metrics.js';
import { PushMappingCache } from './push-mappings.js';

/** The gateway's push event sources: HTTP routes and bucket notifications (see docs/gateway.md). */
export interface PushSources {
  /** `POST /hearth/v1/bucket-notifications/{mapping}`. */
  readonly bucketNotifications: Router;
  /** The fallback for paths no other route took: HTTP routes, or on to the 404. */
  readonly httpRoutes: RequestHandler;
  /** Subscribes and loads the mappings. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface PushSourcesOptions {
  redis: Redis;
  redisUrl: string;
  resyncMs: number;
  invoker: LocalInvoker;
  events: AsyncQueue;
  authenticator: Authenticator;
  metricsRegistry: Registry;
  syncPayloadBytes: number;
  region: string;
  accountId: string;
  logger: Logger;
  onRedisError: (error: unknown) => void;
}

export function createPushSources(options: PushSourcesOptions): PushSources {
  const subscriber = new Redis(options.redisUrl, { lazyConnect: true });
  subscriber.on('error', (error) =>
    options.logger.debug({ err: error }, 'redis push-mapping subscriber error'),
  );
  const mappings = new PushMappingCache(options.redis, subscriber, options.resyncMs, options.onRedisError);
  const metrics = new PushSourceMetrics(options.metricsRegistry);
  return {
    bucketNotifications: bucketNotificationsRouter({
      mappings,
      events: options.events,
      authenticator: options.authenticator,
      metrics,
      maxBodyBytes: options.syncPayloadBytes,
      region: options.region,
    }),
    httpRoutes: httpRoutes({
      mappings,
      invoker: options.invoker,
      authenticator: options.authenticator,
      metrics,
      syncPayloadBytes: options.syncPayloadBytes,
      accountId: options.accountId,
      logger: options.logger,
    }),
    async start() {
      await subscriber.connect();
      await mappings.start();
    },
    async stop() {
      await mappings.stop();
      subscriber.disconnect();
    },
  };
}

export { PushMappingCache } from './push-mappings.js';
export { matchHttpRoute, type HttpRoute } from './http-routes.js';
export { toHttpApiEvent, routeKeyOf, isTextContentType, type HttpApiEvent } from './http-event.js';
export { answerFromResult, answerFromError, type HttpAnswer } from './http-response.js';
