import type { Redis } from 'ioredis';
import { RedisKeys } from '@hearth/api';

export interface FunctionLogLine {
  /** The stream entry id: pass the last one back as `after` to read only newer lines. */
  id: string;
  /** Epoch ms the line was written. */
  time: number;
  instance: string;
  line: string;
}

/**
 * The function's recent output, from the Redis stream the process controller appends its
 * instances' lines to. Without `after`: the last `limit` lines; with it: up to `limit` lines
 * written after that id, oldest first.
 */
export async function readFunctionLogs(
  redis: Redis,
  name: string,
  options: { after?: string; limit: number },
): Promise<{ lines: FunctionLogLine[]; nextToken?: string }> {
  const key = RedisKeys.logs(name);
  const entries = options.after
    ? await redis.xrange(key, `(${options.after}`, '+', 'COUNT', options.limit)
    : (await redis.xrevrange(key, '+', '-', 'COUNT', options.limit)).reverse();
  const lines = entries.map(([id, fields]) => {
    const field = (wanted: string) => {
      for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === wanted) return fields[i + 1]!;
      return '';
    };
    return { id, time: Number(id.split('-')[0]), instance: field('instance'), line: field('line') };
  });
  const last = lines.at(-1)?.id ?? options.after;
  return { lines, ...(last ? { nextToken: last } : {}) };
}
