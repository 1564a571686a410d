import type { Redis } from 'ioredis';
import { RedisKeys } from '@hearth/api';

/**
 * What a deleted Function leaves outside Kubernetes: its keys in Redis (dead letters, logs,
 * demand reports, the async queue). Kubernetes collects the Function's own objects; these are
 * kept for a retention period, so that dead letters can still be read after a delete, and then
 * removed by a sweep.
 */

/** On every Function while Redis is configured: its deletion waits until the registry forgot it. */
export const CLEANUP_FINALIZER = 'hearth.dev/cleanup';

/** Seven days: a deleted function's dead letters stay readable for a week. */
export const DEFAULT_DELETED_RETENTION_SECONDS = 604_800;

/** A deleted function's registry name and when its keys may go (epoch ms). */
export interface Tombstone {
  name: string;
  purgeAt: number;
}

export interface SweepDecision {
  /** Due and not back: their keys are removed, then the tombstone. */
  purge: string[];
  /** Due, but a Function of that name exists again: the keys are its own now; only the tombstone goes. */
  forget: string[];
}

/** Which tombstones the sweep acts on now; those not yet due are left alone. */
export function dueTombstones(
  tombstones: readonly Tombstone[],
  now: number,
  exists: (name: string) => boolean,
): SweepDecision {
  const decision: SweepDecision = { purge: [], forget: [] };
  for (const { name, purgeAt } of tombstones) {
    if (purgeAt > now) continue;
    (exists(name) ? decision.forget : decision.purge).push(name);
  }
  return decision;
}

export function hasCleanupFinalizer(metadata: { finalizers?: string[] } | undefined): boolean {
  return metadata?.finalizers?.includes(CLEANUP_FINALIZER) ?? false;
}

/** Glob characters in a key pattern match literally once escaped. */
function globLiteral(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

async function unlinkMatching(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}

/**
 * Removes the keys of deleted functions whose retention has passed, and their tombstones.
 * `exists` answers by registry name whether such a Function is there again.
 */
export async function sweepDeletedFunctions(
  redis: Redis,
  now: number,
  exists: (name: string) => boolean,
): Promise<SweepDecision> {
  const flat = await redis.zrangebyscore(RedisKeys.deleted, '-inf', now, 'WITHSCORES');
  const tombstones: Tombstone[] = [];
  for (let i = 0; i < flat.length; i += 2) tombstones.push({ name: flat[i]!, purgeAt: Number(flat[i + 1]) });
  const decision = dueTombstones(tombstones, now, exists);
  for (const name of decision.purge) {
    await redis.unlink(RedisKeys.dlq(name), RedisKeys.logs(name), RedisKeys.demand(name));
    await redis.srem(RedisKeys.asyncFunctions, name);
    await unlinkMatching(redis, `${globLiteral(RedisKeys.asyncQueuePrefix(name))}*`);
    await redis.zrem(RedisKeys.deleted, name);
  }
  if (decision.forget.length > 0) await redis.zrem(RedisKeys.deleted, ...decision.forget);
  return decision;
}
