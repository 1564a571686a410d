import type { Redis } from 'ioredis';
import { RedisKeys, type FunctionRoute, type InstanceEndpoint } from '@hearth/api';
import type { Discovery } from '../core/discovery.js';
import { followChannel } from '../core/channel-follower.js';

/**
 * Process-mode discovery: the controller writes the registry keys of api/registry.ts and
 * publishes a function's name on the registry channel when it changes. This keeps a local copy:
 * it re-reads a function on each message and the whole registry periodically, so a missed
 * message (a reconnect) costs at most one resync interval.
 */
export class RedisDiscovery implements Discovery {
  private functions = new Map<string, FunctionRoute>();
  private endpoints = new Map<string, InstanceEndpoint[]>();
  private readonly listeners = new Set<(name: string) => void>();
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
      channel: RedisKeys.registryChannel,
      resyncMs: this.resyncMs,
      refresh: (name) => this.refresh(name),
      resync: () => this.resync(),
      onError: this.onError,
    });
  }

  async stop(): Promise<void> {
    await this.following?.stop();
  }

  getFunction(name: string): FunctionRoute | undefined {
    return this.functions.get(name);
  }

  listFunctions(): FunctionRoute[] {
    return [...this.functions.values()];
  }

  instances(name: string): InstanceEndpoint[] {
    return this.endpoints.get(name) ?? [];
  }

  onChange(listener: (name: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Re-reads one function and its instances. */
  async refresh(name: string): Promise<void> {
    const [[routeError, routeJson], [instancesError, instanceHash]] = (await this.redis
      .multi()
      .get(RedisKeys.function(name))
      .hgetall(RedisKeys.instances(name))
      .exec()) as [[Error | null, string | null], [Error | null, Record<string, string>]];
    if (routeError) throw routeError;
    if (instancesError) throw instancesError;
    this.apply(name, parseRoute(routeJson), parseInstances(instanceHash));
  }

  /** Re-reads the whole registry; functions gone from it are forgotten. */
  async resync(): Promise<void> {
    const names = await this.redis.smembers(RedisKeys.functions);
    const known = new Set(names);
    await Promise.all(names.map((name) => this.refresh(name)));
    for (const name of [...this.functions.keys(), ...this.endpoints.keys()]) {
      if (!known.has(name)) this.apply(name, undefined, []);
    }
  }

  private apply(name: string, route: FunctionRoute | undefined, instances: InstanceEndpoint[]) {
    const before = JSON.stringify([this.functions.get(name), this.endpoints.get(name) ?? []]);
    if (route) this.functions.set(name, route);
    else this.functions.delete(name);
    if (instances.length > 0) this.endpoints.set(name, instances);
    else this.endpoints.delete(name);
    if (JSON.stringify([route, instances]) !== before) {
      for (const listener of this.listeners) listener(name);
    }
  }
}

function parseRoute(json: string | null): FunctionRoute | undefined {
  if (json === null) return undefined;
  try {
    return JSON.parse(json) as FunctionRoute;
  } catch {
    return undefined;
  }
}

function parseInstances(hash: Record<string, string>): InstanceEndpoint[] {
  const instances: InstanceEndpoint[] = [];
  for (const json of Object.values(hash)) {
    try {
      instances.push(JSON.parse(json) as InstanceEndpoint);
    } catch {
      // A malformed entry is skipped; the controller rewrites it on its next pass.
    }
  }
  return instances.sort((a, b) => a.id.localeCompare(b.id));
}
