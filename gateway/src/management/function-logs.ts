import type { Redis } from 'ioredis';
import { RedisKeys } from '@hearth/api';
import type { FunctionBackend } from './backend.js';

export interface FunctionLogLine {
  /** Where the line is in the function's output: pass the last one back as `after` to read only newer lines. */
  id: string;
  /** Epoch ms the line was written. */
  time: number;
  instance: string;
  line: string;
}

export interface FunctionLogPage {
  lines: FunctionLogLine[];
  /** The last line's id (or the `after` given when there is nothing newer); absent when there is no line at all. */
  nextToken?: string;
}

export interface LogReadOptions {
  after?: string;
  limit: number;
}

/**
 * Where `hearth logs` reads a function's output from. Without `after`: the last `limit` lines;
 * with it: up to `limit` lines written after that id, oldest first. Undefined when there is no
 * such function.
 */
export interface FunctionLogSource {
  read(name: string, options: LogReadOptions): Promise<FunctionLogPage | undefined>;
}

/** Process mode: the Redis stream the process controller appends its instances' lines to. */
export class RedisFunctionLogs implements FunctionLogSource {
  constructor(
    private readonly redis: Redis,
    private readonly functions: FunctionBackend,
  ) {}

  async read(name: string, options: LogReadOptions): Promise<FunctionLogPage | undefined> {
    if (!(await this.functions.get(name))) return undefined;
    const key = RedisKeys.logs(name);
    const entries = options.after
      ? await this.redis.xrange(key, `(${options.after}`, '+', 'COUNT', options.limit)
      : (await this.redis.xrevrange(key, '+', '-', 'COUNT', options.limit)).reverse();
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
}
