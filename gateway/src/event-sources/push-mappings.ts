import type { Redis } from 'ioredis';
import { RedisKeys, type PushMapping } from '@hearth/api';
import { followChannel } from '../core/channel-follower.js';

/**
 * The push mappings (HTTP routes, bucket notifications) the controller publishes under
 * `RedisKeys.pushMappings`. Like RedisDiscovery: a local copy re-read on each change message and
 * wholly every resync interval, so a missed message (a reconnect) costs at most one interval.
 */
export class PushMappingCache {
  private mappings = new Map<string, PushMapping>();
  private readonly listeners = new Set<() => void>();
  private following: { stop(): Promise<void> } | undefined;

  constructor(
    private readonly redis: Redis,
    /** A connection of its own: a subscribed connection can run nothing else. */
    private readonly subscriber: Redis,
    private readonly resyncMs: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  async start(): Promise<void> {
    this.following = await followChannel({
      subscriber: this.subscriber,
      channel: RedisKeys.pushMappingsChannel,
      resyncMs: this.resyncMs,
      refresh: (name) => this.refresh(name),
      resync: () => this.resync(),
      onError: this.onError,
    });
  }

  async stop(): Promise<void> {
    await this.following?.stop();
  }

  get(name: string): PushMapping | undefined {
    return this.mappings.get(name);
  }

  list(): PushMapping[] {
    return [...this.mappings.values()];
  }

  /** Called after any mapping was added, changed or removed (the HTTP route table rebuilds then). */
  onChange(listener: () => void): void {
    this.listeners.add(listener);
  }

  async refresh(name: string): Promise<void> {
    const json = await this.redis.hget(RedisKeys.pushMappings, name);
    const mapping = json === null ? undefined : parseMapping(name, json);
    const before = this.mappings.get(name);
    if (mapping) this.mappings.set(name, mapping);
    else this.mappings.delete(name);
    if (JSON.stringify(before) !== JSON.stringify(mapping)) this.changed();
  }

  async resync(): Promise<void> {
    const hash = await this.redis.hgetall(RedisKeys.pushMappings);
    const next = new Map<string, PushMapping>();
    for (const [name, json] of Object.entries(hash)) {
      const mapping = parseMapping(name, json);
      if (mapping) next.set(name, mapping);
    }
    const before = JSON.stringify([...this.mappings.entries()].sort(byName));
    this.mappings = next;
    if (JSON.stringify([...next.entries()].sort(byName)) !== before) this.changed();
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}

const byName = (a: [string, unknown], b: [string, unknown]) => a[0].localeCompare(b[0]);

/** A malformed entry is ignored: the controller rewrites it on its next pass. */
function parseMapping(name: string, json: string): PushMapping | undefined {
  try {
    const mapping = JSON.parse(json) as PushMapping;
    if (typeof mapping !== 'object' || mapping === null || typeof mapping.functionName !== 'string')
      return undefined;
    return { ...mapping, name };
  } catch {
    return undefined;
  }
}
