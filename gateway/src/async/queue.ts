import { Queue } from 'bullmq';
import { pino, type Logger } from 'pino';
import type { Registry } from 'prom-client';
import { Limits, RedisKeys, functionArn } from '@hearth/api';
import { DeferredRemovals } from '../core/deferred-removals.js';
import { GatewayError } from '../core/errors.js';
import type { Discovery } from '../core/discovery.js';
import { backlogReadingSuffices, isUsableRequestId, type BacklogReading } from './policy.js';
import { asyncMetrics, registerBacklogGauges, type AsyncMetrics, type BacklogSnapshot } from './metrics.js';
import {
  ASYNC_FUNCTIONS_KEY,
  BULL_PREFIX,
  eventQueueName,
  defineBacklogCommands,
  producerConnection,
  readBacklog,
  reservationsKey,
  reserveBacklogPlace,
  type Backlog,
} from './redis.js';
import type { AsyncEvent } from './records.js';
import { createDeadLetterQueue, type DeadLetterQueue } from './dlq.js';

/**
 * Past either limit a function's new Event calls get 429, so a function whose workers cannot keep
 * up makes its callers back off instead of growing Redis without bound.
 */
export interface BacklogLimits {
  /** Events accepted and not finished, per function. */
  maxDepth: number;
  /** Age of the oldest event still waiting to run, per function. */
  maxOldestAgeSeconds: number;
}

/**
 * Jobs fail in BullMQ's sense only when Redis failed mid-way through a run (an invocation's own
 * failure is handled by the worker): BullMQ then runs the event again after a pause, and after the
 * last try the worker dead-letters it rather than leave it in the failed set.
 */
export const INFRASTRUCTURE_RETRIES = { attempts: 20, backoffMs: 1000 } as const;

/** The longest a given-back backlog place waits to ride along with a reservation. */
const PLACE_RETURN_DELAY_MS = 2;

export const DEFAULT_BACKLOG_LIMITS: BacklogLimits = { maxDepth: 100_000, maxOldestAgeSeconds: 3600 };

export interface AsyncQueueOptions {
  redisUrl: string;
  discovery: Discovery;
  limits?: Partial<BacklogLimits>;
  /** Largest accepted event, in bytes (Lambda: 1 MB). */
  maxPayloadBytes?: number;
  metricsRegistry?: Registry;
  logger?: Logger;
  region?: string;
  accountId?: string;
  /** How long a call waits for a Redis connection that is (re)connecting before it is refused. */
  connectWaitMs?: number;
}

export interface EnqueueRequest {
  functionName: string;
  qualifier?: string;
  /** Becomes the job id: no `:`, not all digits. */
  requestId: string;
  payload: Buffer | string;
  /** The caller has already parsed the payload as JSON (the Invoke route has): not parsed again. */
  payloadIsJson?: boolean;
  /**
   * The caller chose the request id: the same id again within DEDUPLICATION_TTL_MS is the same
   * event, even after it ran (a job id alone is free again once its job is removed).
   */
  deduplicate?: boolean;
}

/** How long a caller-chosen request id stays taken. */
export const DEDUPLICATION_TTL_MS = 3_600_000;

export interface AsyncQueue {
  /**
   * Stores the event; resolves only once Redis has it, so the caller may answer 202. Throws
   * GatewayError: 404 unknown function, 400 not JSON, 413 too large, 429 backlog over its limit,
   * 500 Redis unreachable. A request id already queued is accepted once (BullMQ keeps the first).
   */
  enqueue(request: EnqueueRequest): Promise<void>;
  backlog(functionName: string): Promise<Backlog>;
  /** The functions' dead-letter queues, for createDlqRouter. */
  readonly deadLetters: DeadLetterQueue;
  /** Function names that have (or had) async events. */
  functionsWithEvents(): Promise<string[]>;
  close(): Promise<void>;
}

export function createAsyncQueue(options: AsyncQueueOptions): AsyncQueue {
  const limits = { ...DEFAULT_BACKLOG_LIMITS, ...options.limits };
  const maxPayloadBytes = options.maxPayloadBytes ?? Limits.asyncPayloadBytes;
  const logger = options.logger ?? pino({ name: 'hearth-async' });
  const connection = producerConnection(options.redisUrl);
  defineBacklogCommands(connection);
  // Backlog places given back once their job is stored: sent with the next reservation.
  const givenBack = new DeferredRemovals(connection, PLACE_RETURN_DELAY_MS, () => undefined);
  // Redis being away is reported per call as a 500; the log only needs it once per outage.
  let connectionDown = false;
  connection.on('error', (error: Error) => {
    if (!connectionDown) logger.warn({ err: error }, 'async queue lost its Redis connection');
    connectionDown = true;
  });
  connection.on('ready', () => (connectionDown = false));

  // Without an offline queue a command sent while connecting fails; waiting a moment for the
  // connection covers start-up and a quick reconnect, and still refuses promptly in an outage.
  const connected = async () => {
    if (connection.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        connection.off('ready', onReady);
        reject(
          new GatewayError(
            'ServiceException',
            `Redis is not reachable (${connection.status}); retry the call`,
          ),
        );
      }, options.connectWaitMs ?? 1000);
      const onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      connection.once('ready', onReady);
    });
  };

  const queues = new Map<string, Queue>();
  const registered = new Set<string>();
  /** Per function: the backlog as the last reservation saw it (backlogReadingSuffices). */
  const readings = new Map<string, BacklogReading>();
  const metrics: AsyncMetrics | undefined = options.metricsRegistry
    ? asyncMetrics(options.metricsRegistry)
    : undefined;

  const queueOf = (functionName: string) => {
    let queue = queues.get(functionName);
    if (!queue) {
      queue = new Queue(eventQueueName(functionName), { connection, prefix: BULL_PREFIX });
      queue.on('error', () => undefined); // reported by the connection's own handler
      queues.set(functionName, queue);
    }
    return queue;
  };

  const backlog = async (functionName: string) => {
    await connected();
    return readBacklog(connection, queueOf(functionName), Date.now());
  };

  const functionsWithEvents = async () => {
    await connected();
    return connection.smembers(ASYNC_FUNCTIONS_KEY);
  };

  if (options.metricsRegistry) {
    registerBacklogGauges(options.metricsRegistry, async (): Promise<BacklogSnapshot[]> => {
      const names = await functionsWithEvents();
      return Promise.all(
        names.map(async (functionName) => {
          const [b, deadLetters] = await Promise.all([
            backlog(functionName),
            connection.xlen(RedisKeys.dlq(functionName)),
          ]);
          return { functionName, depth: b.depth, oldestAgeSeconds: b.oldestWaitingAgeMs / 1000, deadLetters };
        }),
      );
    });
  }

  async function enqueue(request: EnqueueRequest): Promise<void> {
    const { functionName, requestId } = request;
    if (!options.discovery.getFunction(functionName)) {
      throw new GatewayError(
        'ResourceNotFoundException',
        `Function not found: ${functionArn(functionName, options.region, options.accountId, request.qualifier)}`,
      );
    }
    if (!isUsableRequestId(requestId)) {
      throw new GatewayError(
        'InvalidParameterValueException',
        `request id ${JSON.stringify(requestId)} cannot name an async event`,
      );
    }
    const payload = typeof request.payload === 'string' ? request.payload : request.payload.toString('utf8');
    const size = typeof request.payload === 'string' ? Buffer.byteLength(payload) : request.payload.length;
    if (size > maxPayloadBytes) {
      throw new GatewayError(
        'RequestTooLargeException',
        `Request must be smaller than ${maxPayloadBytes} bytes for the InvokeFunction operation`,
      );
    }
    if (!request.payloadIsJson) {
      try {
        JSON.parse(payload === '' ? 'null' : payload);
      } catch (error) {
        throw new GatewayError(
          'InvalidRequestContentException',
          `Could not parse request body into json: ${(error as Error).message}`,
        );
      }
    }

    const queue = queueOf(functionName);
    let reserved = false;
    try {
      await connected();
      givenBack.flush();
      const now = Date.now();
      const reading = readings.get(functionName);
      if (reading && backlogReadingSuffices(reading, limits, now)) {
        reading.storedSince++;
      } else {
        const { granted, backlog: current } = await reserveBacklogPlace(
          connection,
          queue,
          functionName,
          requestId,
          limits,
          now,
        );
        readings.set(functionName, {
          readAt: now,
          depth: current.depth + (granted ? 1 : 0),
          oldestWaitingAgeMs: current.oldestWaitingAgeMs,
          storedSince: 0,
        });
        if (!granted) {
          const overDepth = current.depth >= limits.maxDepth;
          metrics?.rejected.inc({ function: functionName, reason: overDepth ? 'depth' : 'age' });
          throw new GatewayError(
            'TooManyRequestsException',
            overDepth
              ? `Rate exceeded: ${current.depth} async events of ${functionName} are waiting (limit ${limits.maxDepth})`
              : `Rate exceeded: the oldest waiting async event of ${functionName} is ${Math.round(current.oldestWaitingAgeMs / 1000)} s old (limit ${limits.maxOldestAgeSeconds} s)`,
            { Reason: 'AsyncBacklogLimitExceeded' },
            1,
          );
        }
        reserved = true;
      }
      if (!registered.has(functionName)) {
        await connection.sadd(ASYNC_FUNCTIONS_KEY, functionName);
        registered.add(functionName);
      }
      const event: AsyncEvent = {
        functionName,
        ...(request.qualifier ? { qualifier: request.qualifier } : {}),
        requestId,
        payload,
        acceptedAt: Date.now(),
        functionErrors: 0,
        requeues: 0,
        invocations: 0,
      };
      // Finished events leave Redis at once; the record of a discarded one is its dead letter.
      await queue.add('event', event, {
        jobId: requestId,
        removeOnComplete: true,
        removeOnFail: false,
        attempts: INFRASTRUCTURE_RETRIES.attempts,
        backoff: { type: 'fixed', delay: INFRASTRUCTURE_RETRIES.backoffMs },
        ...(request.deduplicate ? { deduplication: { id: requestId, ttl: DEDUPLICATION_TTL_MS } } : {}),
      });
    } catch (error) {
      if (error instanceof GatewayError) throw error;
      logger.error({ err: error, function: functionName, requestId }, 'could not store an async event');
      throw new GatewayError('ServiceException', 'The event could not be stored; retry the call');
    } finally {
      // The stored job counts from now on (or the store failed). Until the removal has run the
      // event counts twice, which can only refuse a call, never let one too many in.
      if (reserved) givenBack.add(reservationsKey(functionName), requestId);
    }
    metrics?.enqueued.inc({ function: functionName });
  }

  const asyncQueue: AsyncQueue = {
    enqueue,
    backlog,
    functionsWithEvents,
    get deadLetters() {
      return deadLetters;
    },
    async close() {
      givenBack.flush();
      await Promise.all([...queues.values()].map((q) => q.close()));
      await connection.quit().catch(() => connection.disconnect());
    },
  };
  const deadLetters = createDeadLetterQueue(connection, asyncQueue, connected);
  return asyncQueue;
}
