import type { Redis } from 'ioredis';

/**
 * Sorted-set removals that need not leave at once (a given-back backlog place; not a released
 * concurrency lease, which must not outlive its call's answer, see ConcurrencyLeases.release):
 * they ride along with the connection's next command that does matter, which calls `flush()`
 * just before it is sent (one write for both, see coalesceWrites), and leave on their own after
 * `delayMs` at the latest. Until then the member still counts, so a delayed removal can only
 * make a limit stricter for a moment, never looser. Removals from one key share one ZREM.
 */
export class DeferredRemovals {
  private readonly pending = new Map<string, string[]>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly delayMs: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  add(key: string, member: string): void {
    const members = this.pending.get(key);
    if (members) members.push(member);
    else this.pending.set(key, [member]);
    this.timer ??= setTimeout(() => this.flush(), this.delayMs);
  }

  /** Sends every pending removal now. */
  flush(): void {
    if (this.pending.size === 0) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const [key, members] of this.pending) this.redis.zrem(key, ...members).catch(this.onError);
    this.pending.clear();
  }
}
