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
 * Depth and the oldest waiting job's timestamp in one round trip, since every Event call reads
 * them. BullMQ pushes new jobs on the left of the wait list and workers take from the right, so
 * the oldest waiting job is the last element; its hash is the queue prefix plus its id.
 */
const BACKLOG_SCRIPT = `
local depth = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) + redis.call('LLEN', KEYS[3])
  + redis.call('ZCARD', KEYS[4]) + redis.call('ZCARD', KEYS[5])
local oldest = redis.call('LINDEX', KEYS[1], -1)
local acceptedAt = false
if oldest then acceptedAt = redis.call('HGET', ARGV[1] .. oldest, 'timestamp') end
return { depth, acceptedAt }
`;

export async function readBacklog(connection: Redis, queue: Queue, now: number): Promise<Backlog> {
  const keys = queue.keys;
  const [depth, acceptedAt] = (await connection.eval(
    BACKLOG_SCRIPT,
    5,
    keys.wait!,
    keys.paused!,
    keys.active!,
    keys.delayed!,
    keys.prioritized!,
    queue.toKey(''),
  )) as [number, string | null];
  return { depth, oldestWaitingAgeMs: acceptedAt ? Math.max(0, now - Number(acceptedAt)) : 0 };
}
