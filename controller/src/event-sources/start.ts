import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { eventSourceKind } from '@hearth/api';
import { GatewayInvoker } from './gateway-invoker.js';
import type { EventSourceMetrics } from './metrics.js';
import { RedisPushMappings } from './redis-state.js';
import { runSchedule } from './schedule.js';
import { MappingSupervisor, type MappingStatusWriter, type RunnerFactory } from './supervisor.js';
import type { DestinationSender, FunctionInvoker } from './types.js';

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

/** Starts the runner of a pulled or scheduled mapping, by its source's kind. */
export function runnerFactory(settings: EventSourceSettings): RunnerFactory {
  return (ctx) => {
    if (!settings.gatewayUrl) return Promise.reject(new Error(NO_GATEWAY));
    const kind = eventSourceKind(ctx.spec);
    switch (kind) {
      case 'schedule':
        return Promise.resolve(runSchedule(ctx));
      default:
        return Promise.reject(new Error(`${kind} mappings are not supported by this controller yet`));
    }
  };
}

const noDestinations: DestinationSender = () =>
  Promise.reject(new Error('failure destinations are not available in this controller yet'));

/**
 * The supervisor of a backend, with the parts every mapping shares: the gateway invoker, the
 * metrics, Hearth's Redis (ticks, push mappings) and where status goes.
 */
export function createMappingSupervisor(options: {
  settings: EventSourceSettings;
  redis: Redis;
  redisUrl: string;
  statusWriter: MappingStatusWriter;
  logger: Logger;
}): { supervisor: MappingSupervisor; close(): Promise<void> } {
  const { settings } = options;
  const invoker = settings.gatewayUrl
    ? new GatewayInvoker({ url: settings.gatewayUrl, token: settings.gatewayToken })
    : undefined;
  const supervisor = new MappingSupervisor({
    startRunner: runnerFactory(settings),
    context: {
      invoker: invoker ?? noGateway,
      redisUrl: options.redisUrl,
      sendToDestination: noDestinations,
      metrics: settings.metrics,
      region: settings.region ?? 'us-east-1',
      accountId: settings.accountId ?? '000000000000',
    },
    statusWriter: options.statusWriter,
    pushPublisher: new RedisPushMappings(options.redis),
    logger: options.logger,
  });
  return {
    supervisor,
    async close() {
      await supervisor.stop();
      await invoker?.close();
    },
  };
}
