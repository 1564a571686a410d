import { createHash } from 'node:crypto';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Destination } from '@hearth/api';
import { GatewayError } from '../core/errors.js';
import type { AsyncMetrics } from './metrics.js';
import type { AsyncQueue } from './queue.js';
import type { DestinationRecord } from './records.js';
import { BULL_PREFIX, DESTINATION_QUEUE } from './redis.js';

export type DestinationKind = 'onSuccess' | 'onFailure';

/** One pending delivery of a destination record. */
export interface Delivery {
  sourceFunction: string;
  kind: DestinationKind;
  destination: Destination;
  record: DestinationRecord;
}

export interface DeliverySettings {
  /** Tries per delivery, the first included. */
  attempts: number;
  /** First delay between tries; doubles each time. */
  backoffMs: number;
  /** How long an HTTP destination may take to answer. */
  httpTimeoutMs: number;
  /** Approximate cap on a destination stream's length. */
  streamMaxLength: number;
}

export const DEFAULT_DELIVERY: DeliverySettings = {
  attempts: 5,
  backoffMs: 1000,
  httpTimeoutMs: 10_000,
  streamMaxLength: 100_000,
};

export function destinationKindOf(destination: Destination): 'function' | 'url' | 'stream' {
  if (destination.function) return 'function';
  if (destination.url) return 'url';
  return 'stream';
}

/**
 * The request id of the event a function destination receives: derived from the source event so
 * that a delivery repeated while the first is still queued is stored once.
 */
export function destinationRequestId(sourceRequestId: string, kind: DestinationKind): string {
  const digest = createHash('sha256').update(`${sourceRequestId}/${kind}`).digest('hex');
  return `${digest.slice(0, 8)}-${digest.slice(8, 12)}-${digest.slice(12, 16)}-${digest.slice(16, 20)}-${digest.slice(20, 32)}`;
}

/** Where pending deliveries are stored: durable, so a crashed worker's deliveries still happen. */
export function createDeliveryQueue(connection: Redis, settings: DeliverySettings) {
  const queue = new Queue<Delivery>(DESTINATION_QUEUE, { connection, prefix: BULL_PREFIX });
  queue.on('error', () => undefined); // the shared connection reports outages
  return {
    async add(delivery: Delivery): Promise<void> {
      await queue.add(delivery.kind, delivery, {
        jobId: `${delivery.record.requestContext.requestId}-${delivery.kind}`,
        attempts: settings.attempts,
        backoff: { type: 'exponential', delay: settings.backoffMs },
        removeOnComplete: true,
        // Deliveries that never succeeded stay inspectable, within bounds.
        removeOnFail: { count: 10_000 },
      });
    },
    close: () => queue.close(),
  };
}

export interface DeliveryWorkerOptions {
  connection: Redis;
  asyncQueue: AsyncQueue;
  settings: DeliverySettings;
  concurrency: number;
  metrics: AsyncMetrics | undefined;
  logger: Logger;
}

/** Delivers destination records: to a function's async queue, an HTTP URL or a Redis stream. */
export function startDeliveryWorker(options: DeliveryWorkerOptions): Worker<Delivery> {
  const { connection, settings, logger, metrics } = options;

  async function deliver(job: Job<Delivery>): Promise<void> {
    const { destination, record, kind } = job.data;
    const body = JSON.stringify(record);
    if (destination.function) {
      try {
        await options.asyncQueue.enqueue({
          functionName: destination.function,
          requestId: destinationRequestId(record.requestContext.requestId, kind),
          payload: body,
        });
      } catch (error) {
        // A missing function or a refused payload will not change by retrying; a 429 or 500 may.
        if (error instanceof GatewayError && error.status !== 429 && error.status < 500)
          throw new UnrecoverableError(error.message);
        throw error;
      }
    } else if (destination.url) {
      const response = await fetch(destination.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(settings.httpTimeoutMs),
      });
      await response.arrayBuffer();
      if (!response.ok) throw new Error(`${destination.url} answered ${response.status}`);
    } else if (destination.stream) {
      await connection.xadd(destination.stream, 'MAXLEN', '~', settings.streamMaxLength, '*', 'record', body);
    }
  }

  const worker = new Worker<Delivery>(DESTINATION_QUEUE, deliver, {
    connection,
    prefix: BULL_PREFIX,
    concurrency: options.concurrency,
  });
  const labels = (job: Job<Delivery>, outcome: string) => ({
    function: job.data.sourceFunction,
    destination: job.data.kind,
    kind: destinationKindOf(job.data.destination),
    outcome,
  });
  worker.on('completed', (job) => metrics?.destinationDeliveries.inc(labels(job, 'delivered')));
  // `failed` fires on every failed try; only the last one means the record was not delivered.
  worker.on('failed', (job, error) => {
    if (!job) return;
    const final = error instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
    metrics?.destinationDeliveries.inc(labels(job, final ? 'failed' : 'retried'));
    const context = {
      function: job.data.sourceFunction,
      destination: job.data.kind,
      requestId: job.data.record.requestContext.requestId,
      err: error,
    };
    if (final) logger.error(context, 'gave up delivering a destination record');
    else logger.warn(context, 'destination delivery failed; will try again');
  });
  worker.on('error', () => undefined); // the shared connection reports outages
  return worker;
}
