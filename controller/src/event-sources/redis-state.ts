import type { Redis } from 'ioredis';
import { RedisKeys, type EventSourceMappingStatus, type PushMapping } from '@hearth/api';
import type { DesiredMapping, MappingStatusWriter, PushMappingPublisher } from './supervisor.js';

/** Mapping status in process mode: `RedisKeys.mappingStatus`, field = the mapping's name. */
export class RedisMappingStatus implements MappingStatusWriter {
  constructor(private readonly redis: Redis) {}

  async write(mapping: DesiredMapping, status: EventSourceMappingStatus): Promise<void> {
    await this.redis.hset(RedisKeys.mappingStatus, mapping.name, JSON.stringify(status));
  }

  async prune(keep: ReadonlySet<string>): Promise<void> {
    const names = new Set([...keep].map((id) => id.slice(id.indexOf('/') + 1)));
    const stale = (await this.redis.hkeys(RedisKeys.mappingStatus)).filter((name) => !names.has(name));
    if (stale.length > 0) await this.redis.hdel(RedisKeys.mappingStatus, ...stale);
  }
}

/**
 * The push mappings the gateways serve: `RedisKeys.pushMappings` (field = the mapping's name,
 * value = JSON PushMapping), each change announced on `RedisKeys.pushMappingsChannel`.
 */
export class RedisPushMappings implements PushMappingPublisher {
  constructor(private readonly redis: Redis) {}

  async sync(mappings: PushMapping[]): Promise<void> {
    const published = await this.redis.hgetall(RedisKeys.pushMappings);
    const wanted = new Map(mappings.map((m) => [m.name, JSON.stringify(m)]));
    const changed: string[] = [];
    const pipeline = this.redis.multi();
    for (const [name, json] of wanted) {
      if (published[name] === json) continue;
      pipeline.hset(RedisKeys.pushMappings, name, json);
      changed.push(name);
    }
    for (const name of Object.keys(published)) {
      if (wanted.has(name)) continue;
      pipeline.hdel(RedisKeys.pushMappings, name);
      changed.push(name);
    }
    if (changed.length === 0) return;
    for (const name of changed) pipeline.publish(RedisKeys.pushMappingsChannel, name);
    await pipeline.exec();
  }
}
