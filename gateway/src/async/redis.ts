import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';

/** BullMQ's keys live under this prefix, beside the rest of Hearth's (`hearth:`). */
export const BULL_PREFIX = 'hearth:bull';

/** Set of function names that ever had an async event: the workers serve their queues. */
export const ASYNC_FUNCTIONS_KEY = 'hearth:async:functions';

/** The BullMQ queue of one function's async events (names may not contain `:`). */
export function eventQueueName(functionName: string): string {
  return `async-${functionName}`;
}

export function functionOfQueue(queueName: string): string | undefined {
  return queueName.startsWith('async-') ? queueName.slice('async-'.length) : undefined;
}

/** Destination deliveries have their own queue, so a slow URL never holds up events. */
export const DESTINATION_QUEUE = 'destinations';

/**
 * A producer connection fails fast: with Redis unreachable a call must be refused at once (the
 * caller retries) rather than queued in memory and acknowledged with a 202 that Redis never saw.
 */
export function producerConnection(redisUrl: string): Redis {
  return new Redis(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false });
}

/** A worker connection waits out Redis restarts instead of failing its blocking commands. */
export function workerConnection(redisUrl: string): Redis {
  return new Redis(redisUrl, { maxRetriesPerRequest: null, enableReadyCheck: true });
}

export interface Backlog {
  /** Events accepted and not finished: waiting, delayed (retries, backoff) or running. */
  depth: number;
  /** Age of the oldest event waiting to run, 0 when none waits. */
  oldestWaitingAgeMs: number;
}

/**
 * Reads a queue's backlog in two round trips. BullMQ pushes new jobs on the left of the wait
 * list and workers take from the right, so the oldest waiting job is the last element.
 */
export async function readBacklog(connection: Redis, queue: Queue, now: number): Promise<Backlog> {
  const keys = queue.keys;
  const replies = await connection
    .multi()
    .llen(keys.wait!)
    .llen(keys.paused!)
    .llen(keys.active!)
    .zcard(keys.delayed!)
    .zcard(keys.prioritized!)
    .lindex(keys.wait!, -1)
    .exec();
  if (!replies) throw new Error('backlog read was aborted');
  for (const [error] of replies) if (error) throw error;
  const counts = replies.slice(0, 5).map(([, value]) => Number(value) || 0);
  const oldestId = replies[5]![1] as string | null;
  let oldestWaitingAgeMs = 0;
  if (oldestId) {
    const acceptedAt = await connection.hget(queue.toKey(oldestId), 'timestamp');
    if (acceptedAt) oldestWaitingAgeMs = Math.max(0, now - Number(acceptedAt));
  }
  return { depth: counts.reduce((a, b) => a + b, 0), oldestWaitingAgeMs };
}
