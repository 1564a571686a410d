import type { ChainableCommander, Redis } from 'ioredis';
import { RedisKeys, type DemandReport, type FunctionRoute, type InstanceEndpoint } from '@hearth/api';

/**
 * The controller's side of the Redis registry (api/registry.ts): it writes routes and instance
 * endpoints and reads the gateways' demand reports. Every write publishes the function's name so
 * that gateways refresh at once.
 */
export class RegistryWriter {
  constructor(private readonly redis: Redis) {}

  async names(): Promise<string[]> {
    return this.redis.smembers(RedisKeys.functions);
  }

  async route(name: string): Promise<FunctionRoute | undefined> {
    const json = await this.redis.get(RedisKeys.function(name));
    return json ? (JSON.parse(json) as FunctionRoute) : undefined;
  }

  /** Also drops a tombstone of the name: the keys a deleted function left are the new one's now. */
  async putRoute(route: FunctionRoute): Promise<void> {
    await this.redis
      .multi()
      .zrem(RedisKeys.deleted, route.name)
      .sadd(RedisKeys.functions, route.name)
      .set(RedisKeys.function(route.name), JSON.stringify(route))
      .publish(RedisKeys.registryChannel, route.name)
      .exec();
  }

  async removeFunction(name: string): Promise<void> {
    await this.forget(this.redis.multi(), name).exec();
  }

  /** Drops the route and instances and tells the gateways, as part of the caller's transaction. */
  private forget(multi: ChainableCommander, name: string): ChainableCommander {
    return multi
      .srem(RedisKeys.functions, name)
      .del(RedisKeys.function(name), RedisKeys.instances(name))
      .publish(RedisKeys.registryChannel, name);
  }

  /**
   * Forgets a deleted function as removeFunction does, and records when the keys it leaves
   * (dead letters, logs, its async queue) may be swept (cleanup.ts). Retiring it again (a
   * resync, another controller) keeps the first time: the retention counts from the deletion.
   */
  async retireFunction(name: string, purgeAt: number): Promise<void> {
    await this.forget(this.redis.multi().zadd(RedisKeys.deleted, 'NX', purgeAt, name), name).exec();
  }

  async instances(name: string): Promise<InstanceEndpoint[]> {
    const hash = await this.redis.hgetall(RedisKeys.instances(name));
    return Object.values(hash).map((json) => JSON.parse(json) as InstanceEndpoint);
  }

  async putInstance(endpoint: InstanceEndpoint): Promise<void> {
    await this.redis
      .multi()
      .hset(RedisKeys.instances(endpoint.function), endpoint.id, JSON.stringify(endpoint))
      .publish(RedisKeys.registryChannel, endpoint.function)
      .exec();
  }

  async removeInstance(name: string, id: string): Promise<void> {
    await this.redis
      .multi()
      .hdel(RedisKeys.instances(name), id)
      .publish(RedisKeys.registryChannel, name)
      .exec();
  }

  /** Forgets instances a previous controller left behind (their processes died with it). */
  async clearInstances(name: string): Promise<void> {
    await this.redis.multi().del(RedisKeys.instances(name)).publish(RedisKeys.registryChannel, name).exec();
  }

  async demand(name: string): Promise<DemandReport[]> {
    const hash = await this.redis.hgetall(RedisKeys.demand(name));
    const reports: DemandReport[] = [];
    for (const json of Object.values(hash)) {
      try {
        reports.push(JSON.parse(json) as DemandReport);
      } catch {
        // a malformed report counts as none; its gateway rewrites it within a second
      }
    }
    return reports;
  }

  /**
   * Makes the function's instances exactly `endpoints` (level-triggered): writes what differs,
   * removes what is gone, and publishes once, only if anything changed. Returns whether it did.
   */
  async syncInstances(name: string, endpoints: InstanceEndpoint[]): Promise<boolean> {
    const key = RedisKeys.instances(name);
    const existing = await this.redis.hgetall(key);
    const wanted = new Map(endpoints.map((e) => [e.id, JSON.stringify(e)]));
    const multi = this.redis.multi();
    let changed = false;
    for (const [id, json] of wanted) {
      if (existing[id] === json) continue;
      multi.hset(key, id, json);
      changed = true;
    }
    for (const id of Object.keys(existing)) {
      if (wanted.has(id)) continue;
      multi.hdel(key, id);
      changed = true;
    }
    if (!changed) {
      return false;
    }
    await multi.publish(RedisKeys.registryChannel, name).exec();
    return true;
  }
}
