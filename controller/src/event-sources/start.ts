import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { eventSourceKind } from '@hearth/api';
import { createDestinationSender } from './destinations.js';
import { GatewayInvoker } from './gateway-invoker.js';
import { RedisLease } from './lease.js';
import type { EventSourceMetrics } from './metrics.js';
import { openNatsSource } from './nats-source.js';
import { RedisPushMappings } from './redis-state.js';
import { openRedisStreamSource } from './redis-stream-source.js';
import { runSchedule } from './schedule.js';
import { runStreamMapping } from './stream-runner.js';
import {
  MappingSupervisor,
  type DesiredMapping,
  type MappingStatusWriter,
  type RunnerFactory,
} from './supervisor.js';
import type { FunctionInvoker, MappingContext, MappingRunner, RecordSource } from './types.js';

/** What both backends give the event sources: the same settings from the controller's environment. */
export interface EventSourceSettings {
  /** The gateway's base URL: schedules and pollers invoke functions through it. */
  gatewayUrl?: string;
  /** An API key of the gateway, when its auth is on. */
  gatewayToken?: string;
  metrics: EventSourceMetrics;
  /** First delay before a failed batch is sent again (stream mappings). */
  retryBaseDelayMs?: number;
  /** For ARNs in events; the gateway's HEARTH_REGION and HEARTH_ACCOUNT_ID. */
  region?: string;
  accountId?: string;
}

const NO_GATEWAY = 'HEARTH_GATEWAY_URL is not set: the controller has no gateway to invoke functions through';

/** An invoker for a controller without a gateway: every call is unavailable, and says why. */
const noGateway: FunctionInvoker = {
  invoke: () => Promise.resolve({ kind: 'unavailable', message: NO_GATEWAY }),
};

/**
 * A mapping's reader in its consumer group: the same name every time the mapping starts, so that a
 * restarted controller (or the next leader) takes back the entries its predecessor held at once.
 */
export function redisStreamConsumer(ctx: Pick<MappingContext, 'namespace' | 'name'>): string {
  return `hearth-controller:${ctx.namespace}/${ctx.name}`;
}

/** Starts the runner of a pulled or scheduled mapping, by its source's kind. */
export function runnerFactory(settings: EventSourceSettings): RunnerFactory {
  const streamOptions = { retryBaseDelayMs: settings.retryBaseDelayMs };
  const runStream = async (ctx: MappingContext, open: () => Promise<RecordSource>): Promise<MappingRunner> =>
    runStreamMapping(ctx, await open(), streamOptions);
  return (ctx) => {
    if (!settings.gatewayUrl) return Promise.reject(new Error(NO_GATEWAY));
    const { spec } = ctx;
    const position = {
      startingPosition: spec.startingPosition,
      startingPositionTimestamp: spec.startingPositionTimestamp,
    };
    const kind = eventSourceKind(spec);
    switch (kind) {
      case 'schedule':
        return Promise.resolve(runSchedule(ctx));
      case 'redisStream': {
        const source = spec.source.redisStream!;
        return runStream(ctx, () =>
          openRedisStreamSource({
            redisUrl: source.url ?? ctx.redisUrl,
            stream: source.stream,
            group: source.group ?? `hearth-${ctx.name}`,
            consumer: redisStreamConsumer(ctx),
            position,
          }),
        );
      }
      case 'nats': {
        const source = spec.source.nats!;
        return runStream(ctx, () =>
          openNatsSource({
            source,
            consumer: source.consumer ?? `hearth-${ctx.name}`,
            position,
            logger: ctx.logger,
          }),
        );
      }
      default:
        return Promise.reject(
          new Error(`${kind} mappings are served by the gateway, not run by the controller`),
        );
    }
  };
}

/** What a backend drives: it hands over every mapping it found, each time it looked. */
export interface MappingReconciler {
  reconcile(desired: ReadonlyMap<string, DesiredMapping>): Promise<void>;
}

/**
 * The supervisor of a backend, with the parts every mapping shares: the gateway invoker, the
 * metrics, Hearth's Redis (ticks, push mappings) and where status goes. It runs the mappings only
 * while this controller holds the event source lease in Redis: two controllers (two `hearth dev`
 * on one Redis, or a Kubernetes leader handing over) never read one stream side by side, which
 * would break the order per key. The other controllers stand by and take over when the holder
 * stops (it releases the lease) or dies (the lease expires, or at once when it was a process of
 * the same host).
 */
export function createMappingSupervisor(options: {
  settings: EventSourceSettings;
  redis: Redis;
  redisUrl: string;
  statusWriter: MappingStatusWriter;
  logger: Logger;
  /** How long a dead holder's lease keeps the others waiting. */
  leaseTtlMs?: number;
}): { supervisor: MappingReconciler; close(): Promise<void> } {
  const { settings, logger } = options;
  const invoker = settings.gatewayUrl
    ? new GatewayInvoker({ url: settings.gatewayUrl, token: settings.gatewayToken })
    : undefined;
  const newSupervisor = () =>
    new MappingSupervisor({
      startRunner: runnerFactory(settings),
      context: {
        invoker: invoker ?? noGateway,
        redisUrl: options.redisUrl,
        sendToDestination: createDestinationSender({ redis: options.redis, invoker: invoker ?? noGateway }),
        metrics: settings.metrics,
        region: settings.region ?? 'us-east-1',
        accountId: settings.accountId ?? '000000000000',
      },
      statusWriter: options.statusWriter,
      pushPublisher: new RedisPushMappings(options.redis),
      logger,
    });

  let latest: ReadonlyMap<string, DesiredMapping> | undefined;
  let active: MappingSupervisor | undefined;
  // Taking and losing the lease are carried out one after another, in the order they happened.
  let transitions: Promise<void> = Promise.resolve();
  const transition = (step: () => Promise<void>) => {
    transitions = transitions
      .then(step)
      .catch((error: unknown) => logger.error({ err: error }, 'event source lease change failed'));
  };
  const lease = new RedisLease({
    redis: options.redis,
    ttlMs: options.leaseTtlMs,
    logger,
    onAcquired: () =>
      transition(async () => {
        active = newSupervisor();
        if (latest) await active.reconcile(latest);
      }),
    onLost: () =>
      transition(async () => {
        const stopping = active;
        active = undefined;
        await stopping?.stop();
      }),
  });
  lease.start();
  return {
    supervisor: {
      reconcile(desired) {
        latest = desired;
        return active ? active.reconcile(desired) : Promise.resolve();
      },
    },
    async close() {
      await lease.stop();
      await transitions;
      await active?.stop();
      active = undefined;
      // Only now: a successor must not start while this controller's batches are still in flight.
      await lease.release();
      await invoker?.close();
    },
  };
}
