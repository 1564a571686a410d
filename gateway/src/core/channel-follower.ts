import type { Redis } from 'ioredis';

export interface ChannelFollowerOptions {
  /** A connection of its own: a subscribed connection can run nothing else. */
  subscriber: Redis;
  channel: string;
  resyncMs: number;
  /** Re-reads one entry, named by a message on the channel. */
  refresh(name: string): Promise<void>;
  /** Re-reads everything. */
  resync(): Promise<void>;
  onError(error: unknown): void;
}

/**
 * Keeps a local copy of something the controller publishes in Redis: re-reads one entry on each
 * message, and everything after every (re)connect and every resync interval. After a reconnect
 * ioredis resubscribes but messages sent meanwhile are lost, so a missed message costs at most
 * one interval.
 */
export async function followChannel(options: ChannelFollowerOptions): Promise<{ stop(): Promise<void> }> {
  const { subscriber, channel, onError } = options;
  let stopped = false;
  subscriber.on('message', (from: string, name: string) => {
    if (from === channel) options.refresh(name).catch(onError);
  });
  subscriber.on('ready', () => {
    if (!stopped) options.resync().catch(onError);
  });
  await subscriber.subscribe(channel);
  await options.resync();
  const timer = setInterval(() => options.resync().catch(onError), options.resyncMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await subscriber.unsubscribe().catch(() => undefined);
    },
  };
}
