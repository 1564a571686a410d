import type { Redis } from 'ioredis';
import { RedisKeys } from '@hearth/api';

/** Lines kept per function: enough for `hearth logs` to show recent calls, small enough for Redis. */
const KEPT_LINES = 2000;

/**
 * Appends the output of a function's instances to its Redis stream, one entry per line, so that
 * the gateway can serve `hearth logs`. Partial lines wait for their end; a write that fails is
 * dropped (logs must never stop an instance).
 */
export class FunctionLogs {
  private readonly partial = new Map<string, string>();

  constructor(private readonly redis: Redis) {}

  append(functionName: string, instanceId: string, text: string): void {
    const buffered = (this.partial.get(instanceId) ?? '') + text;
    const lines = buffered.split('\n');
    const rest = lines.pop()!;
    if (rest === '') this.partial.delete(instanceId);
    else this.partial.set(instanceId, rest.slice(-16_384));
    if (lines.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const line of lines) {
      pipeline.xadd(
        RedisKeys.logs(functionName),
        'MAXLEN',
        '~',
        KEPT_LINES,
        '*',
        'instance',
        instanceId,
        'line',
        line,
      );
    }
    pipeline.exec().catch(() => undefined);
  }

  /** Forgets a function's lines (it was deleted). */
  async remove(functionName: string): Promise<void> {
    await this.redis.del(RedisKeys.logs(functionName));
  }
}
