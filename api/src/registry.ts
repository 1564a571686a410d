import type { FunctionSpec } from './function.js';

/**
 * What the controller tells the gateways, and what the gateways tell the controller, through
 * Redis. On Kubernetes the gateway reads Functions and EndpointSlices instead; these shapes are
 * the same either way (the gateway's discovery interface yields them).
 */

/** A function as the gateway routes to it. */
export interface FunctionRoute {
  name: string;
  /** The current revision: calls go only to instances of it. */
  revision: string;
  /** The spec with every default filled in. */
  spec: FunctionSpec;
  /** Lambda's function state: Pending until the first revision's code is ready. */
  state: 'Pending' | 'Active' | 'Inactive' | 'Failed';
  stateReason?: string;
  /** ISO time of the last change, Lambda's LastModified. */
  lastModified: string;
}

/** One warm instance (a runtime shim) of a function. */
export interface InstanceEndpoint {
  id: string;
  function: string;
  revision: string;
  /** Base URL of the shim, e.g. http://127.0.0.1:41234 */
  url: string;
  ready: boolean;
  /** A draining instance finishes its calls and takes no new ones. */
  draining: boolean;
}

/** A gateway's report of one function's demand, about once a second. */
export interface DemandReport {
  gateway: string;
  inFlight: number;
  /** Calls held because no instance was free. */
  waiting: number;
  /** Epoch ms of the report; reports older than a few seconds are ignored. */
  at: number;
}

export const RedisKeys = {
  prefix: 'hearth:',
  /** Set of function names known to the registry (process mode). */
  functions: 'hearth:functions',
  /** String: JSON FunctionRoute. */
  function: (name: string) => `hearth:fn:${name}`,
  /** Hash: instance id -> JSON InstanceEndpoint. */
  instances: (name: string) => `hearth:instances:${name}`,
  /** Pub/sub channel: a function name whose route or instances changed. */
  registryChannel: 'hearth:registry',
  /** Hash: gateway id -> JSON DemandReport. */
  demand: (name: string) => `hearth:demand:${name}`,
  /** Pub/sub channel: a function name whose calls are waiting for an instance (scale up now). */
  demandChannel: 'hearth:demand',
  /** Stream: the function's dead-letter queue. */
  dlq: (name: string) => `hearth:dlq:${name}`,
  /** Hash: mapping name -> JSON PushMapping (HTTP routes and bucket notifications the gateway serves). */
  pushMappings: 'hearth:esm:push',
  /** Pub/sub channel: a push mapping name that changed. */
  pushMappingsChannel: 'hearth:esm:push',
  /** String, set NX: one schedule tick claimed, so that two controllers invoke it once. */
  scheduleTick: (mapping: string, tickEpochMs: number) => `hearth:esm:tick:${mapping}:${tickEpochMs}`,
  /** Hash: mapping name -> JSON EventSourceMappingStatus as the controller last saw it (process mode). */
  mappingStatus: 'hearth:esm:status',
  /** Stream: the last lines of output of the function's instances (process mode), field `line`. */
  logs: (name: string) => `hearth:logs:${name}`,
  /** Sorted set: registry names of deleted functions, scored by when their keys may go (epoch ms). */
  deleted: 'hearth:deleted',
  /** Set: functions that ever had an async event (the gateway's ASYNC_FUNCTIONS_KEY). */
  asyncFunctions: 'hearth:async:functions',
  /** Key prefix of the function's BullMQ queue (the gateway's BULL_PREFIX and eventQueueName). */
  asyncQueuePrefix: (name: string) => `hearth:bull:async-${name}:`,
} as const;

/** Demand reports older than this are stale (their gateway is gone). */
export const DEMAND_REPORT_TTL_MS = 5000;
