import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { coalesceWrites } from '../core/redis-writes.js';

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
  const connection = new Redis(redisUrl, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    lazyConnect: false,
  });
  // Event calls that arrive together store their events in one write.
  coalesceWrites(connection);
  return connection;
}

/** A worker connection waits out Redis restarts instead of failing its blocking commands. */
export function workerConnection(redisUrl: string): Redis {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null, enableReadyCheck: true });
  // Jobs that finish together (each finish fetches the next job) go out in one write.
  coalesceWrites(connection);
  return connection;
}

export interface Backlog {
  /** Events accepted and not finished: waiting, delayed (retries, backoff) or running. */
  depth: number;
  /** Age of the oldest event waiting to run, 0 when none waits. */
  oldestWaitingAgeMs: number;
}

/** Sorted set of places taken by Event calls whose job is being stored; score = expiry (ms). */
export function reservationsKey(functionName: string): string {
  return `hearth:async:reserving:${functionName}`;
}

/**
 * A reservation outlives any store that can still succeed (a call waits at most about a second
 * for its connection); one left behind by a gateway that died mid-store frees itself after this.
 */
export const RESERVATION_TTL_MS = 10_000;

// Depth and the oldest waiting job's timestamp, shared by both scripts below. BullMQ pushes new
// jobs on the left of the wait list and workers take from the right, so the oldest waiting job
// is the last element; its hash is the queue prefix plus its id.
const READ_BACKLOG = `
local depth = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) + redis.call('LLEN', KEYS[3])
  + redis.call('ZCARD', KEYS[4]) + redis.call('ZCARD', KEYS[5])
local oldest = redis.call('LINDEX', KEYS[1], -1)
local acceptedAt = false
if oldest then acceptedAt = redis.call('HGET', ARGV[1] .. oldest, 'timestamp') end
`;

/** Depth and the oldest waiting job's timestamp in one round trip. */
const BACKLOG_SCRIPT = `${READ_BACKLOG}
return { depth, acceptedAt }
`;

/**
 * The backlog check of an Event call and the place it takes, as one atomic step: places reserved
 * by calls still storing their job count as depth, so calls on any number of gateways can never
 * together pass the depth limit. The caller stores the job, then gives the place back (the job
 * itself counts from then on). Expired places are dropped by Redis's clock; the age of the oldest
 * event is measured with the caller's clock, as BullMQ stamps jobs with it.
 * Returns { granted (1 or 0), depth with reservations, oldest waiting job's timestamp or false }.
 */
const RESERVE_SCRIPT = `${READ_BACKLOG}
local time = redis.call('TIME')
local redisNow = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', redisNow)
depth = depth + redis.call('ZCARD', KEYS[6])
local tooOld = acceptedAt and tonumber(ARGV[3]) - tonumber(acceptedAt) > tonumber(ARGV[5])
if depth >= tonumber(ARGV[4]) or tooOld then return { 0, depth, acceptedAt } end
redis.call('ZADD', KEYS[6], redisNow + tonumber(ARGV[6]), ARGV[2])
return { 1, depth, acceptedAt }
`;

type BacklogRedis = Redis & {
  hearthReadBacklog(...keysAndArgs: string[]): Promise<[number, string | null]>;
  hearthReserveEvent(...keysAndArgs: (string | number)[]): Promise<[number, number, string | null]>;
};

/** Defines the backlog scripts on a connection (sent once, then by their SHA). */
export function defineBacklogCommands(connection: Redis): void {
  connection.defineCommand('hearthReadBacklog', { numberOfKeys: 5, lua: BACKLOG_SCRIPT });
  connection.defineCommand('hearthReserveEvent', { numberOfKeys: 6, lua: RESERVE_SCRIPT });
}

const backlogKeys = (queue: Queue) => {
  const keys = queue.keys;
  return [keys.wait!, keys.paused!, keys.active!, keys.delayed!, keys.prioritized!];
};

const ageOf = (acceptedAt: string | null, now: number) =>
  acceptedAt ? Math.max(0, now - Number(acceptedAt)) : 0;

/** The queue's backlog; `connection` must have had defineBacklogCommands. */
export async function readBacklog(connection: Redis, queue: Queue, now: number): Promise<Backlog> {
  const [depth, acceptedAt] = await (connection as BacklogRedis).hearthReadBacklog(
    ...backlogKeys(queue),
    queue.toKey(''),
  );
  return { depth, oldestWaitingAgeMs: ageOf(acceptedAt, now) };
}

/**
 * Takes a place in the function's backlog for `member` (the request id) if the backlog is within
 * `limits`; either way returns the backlog it saw. A granted place is given back (ZREM of
 * `reservationsKey`) once the job is stored, or failed to be.
 */
export async function reserveBacklogPlace(
  connection: Redis,
  queue: Queue,
  functionName: string,
  member: string,
  limits: { maxDepth: number; maxOldestAgeSeconds: number },
  now: number,
): Promise<{ granted: boolean; backlog: Backlog }> {
  const [granted, depth, acceptedAt] = await (connection as BacklogRedis).hearthReserveEvent(
    ...backlogKeys(queue),
    reservationsKey(functionName),
    queue.toKey(''),
    member,
    now,
    limits.maxDepth,
    limits.maxOldestAgeSeconds * 1000,
    RESERVATION_TTL_MS,
  );
  return { granted: granted === 1, backlog: { depth, oldestWaitingAgeMs: ageOf(acceptedAt, now) } };
}
