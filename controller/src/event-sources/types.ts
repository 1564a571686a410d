import type { Logger } from 'pino';
import type { Destination, EventSourceMappingSpec, EventSourceMappingStatus } from '@hearth/api';
import type { EventSourceMetrics } from './metrics.js';

/** How one call of the function through the gateway ended, as a poller needs to know it. */
export type InvokeOutcome =
  | { kind: 'success'; payload: string }
  | { kind: 'functionError'; errorType: string; payload: string }
  /** 429: not the function's fault, so it uses no retry attempt. */
  | { kind: 'throttled'; retryAfterMs: number }
  /** The gateway is unreachable or answered a service error (404, 409, 5xx): retried, no attempt used. */
  | { kind: 'unavailable'; status?: number; message: string };

/** An event already serialized to JSON: an invoker sends its text as it is. */
export class JsonText {
  constructor(readonly text: string) {}
}

export interface FunctionInvoker {
  /**
   * Sync (RequestResponse) by default; `async: true` sends an Event invocation (202 is success).
   * `payload` is serialized to JSON, unless it is JsonText. An Event call's `requestId` (a UUID)
   * makes sending it again harmless: the gateway's queue takes one event per id.
   */
  invoke(
    functionName: string,
    payload: unknown,
    options?: { async?: boolean; requestId?: string },
  ): Promise<InvokeOutcome>;
}

/** Sends a failure record to a destination (a function invoked async, a URL, a Redis stream). */
export type DestinationSender = (destination: Destination, record: unknown) => Promise<void>;

/** What a running mapping is given by the supervisor that starts it. */
export interface MappingContext {
  /** `namespace/name`. */
  id: string;
  name: string;
  namespace: string;
  /** The mapping's uid (Kubernetes) or a stable hash of its name (process mode): used in ARNs. */
  uid: string;
  /** Validated, defaults filled in. */
  spec: EventSourceMappingSpec;
  invoker: FunctionInvoker;
  /** Hearth's own Redis (schedule ticks, default stream source, stream destinations). */
  redisUrl: string;
  sendToDestination: DestinationSender;
  metrics: EventSourceMetrics;
  logger: Logger;
  region: string;
  accountId: string;
  /** Merged into the mapping's status; the supervisor writes it out (coalesced). */
  reportStatus(patch: Partial<EventSourceMappingStatus>): void;
}

/** A mapping that runs until stopped. stop() waits for the batch in flight, then returns. */
export interface MappingRunner {
  stop(): Promise<void>;
}

/** One record of a pull source, in the source's order. */
export interface SourceRecord {
  /**
   * The record's position in its source (a Redis entry id, a JetStream stream sequence): the
   * Kinesis `sequenceNumber` handlers see and the `itemIdentifier` of batchItemFailures.
   */
  sequence: string;
  /** Order is kept per partition key (parallelizationFactor); the source's own key, or its name. */
  partitionKey: string;
  data: Buffer;
  /** Epoch ms the record reached the source. */
  arrivedAt: number;
  /**
   * Handed out before by a reader that never acknowledged it (a controller stopped or killed
   * mid-batch): the function may have seen it already, so it counts as a duplicate.
   */
  redelivered?: boolean;
}

/**
 * A pull source read in order. Records handed out by `read` and never acknowledged (a controller
 * killed mid-batch) are handed out again, first, by the next reader of the same source.
 */
export interface RecordSource {
  /** ARN-like name of the source for records and failure metadata, e.g. arn:hearth:redis:::stream/orders. */
  readonly arn: string;
  /** Up to `max` records not handed out before, in order; waits at most `waitMs` for the first. */
  read(max: number, waitMs: number): Promise<SourceRecord[]>;
  /** These records are finished (processed, or given up on and sent to the failure path). */
  ack(records: SourceRecord[]): Promise<void>;
  /** Age in ms of the oldest record not yet acknowledged; 0 when caught up. */
  lagMs(): Promise<number>;
  close(): Promise<void>;
}

export type StartingPosition = Pick<EventSourceMappingSpec, 'startingPosition' | 'startingPositionTimestamp'>;
