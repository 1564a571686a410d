import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RedisKeys } from '@hearth/api';
import { GatewayError } from '../core/errors.js';
import type { AsyncQueue } from './queue.js';
import { parseDeadLetter, type DeadLetter } from './records.js';

/** A function's dead-letter queue: a Redis stream of discarded async events. */
export interface DeadLetterQueue {
  list(
    functionName: string,
    page: { limit: number; after?: string },
  ): Promise<{ items: DeadLetter[]; nextToken?: string }>;
  get(functionName: string, id: string): Promise<DeadLetter>;
  size(functionName: string): Promise<number>;
  /** Runs a dead letter again as a new async event (a new request id), then removes it. */
  redrive(functionName: string, id: string): Promise<{ id: string; requestId: string }>;
  /** Redrives every entry present when the call started; stops at the first refusal (e.g. 429). */
  redriveAll(functionName: string): Promise<{ redriven: number }>;
  remove(functionName: string, id: string): Promise<void>;
  purge(functionName: string): Promise<{ purged: number }>;
}

const STREAM_ID = /^[0-9]+-[0-9]+$/;
const REDRIVE_PAGE = 100;

/**
 * `connected` resolves once the connection can take commands: the producer connection has no
 * offline queue, so commands sent while it (re)connects would fail instead of waiting.
 */
export function createDeadLetterQueue(
  connection: Redis,
  queue: AsyncQueue,
  connected: () => Promise<void>,
): DeadLetterQueue {
  const key = RedisKeys.dlq;

  async function get(functionName: string, id: string): Promise<DeadLetter> {
    if (!STREAM_ID.test(id))
      throw new GatewayError('InvalidParameterValueException', `not a dead-letter id: ${id}`);
    const entries = await connection.xrange(key(functionName), id, id);
    const entry = entries[0];
    if (!entry)
      throw new GatewayError('ResourceNotFoundException', `Dead letter not found: ${functionName} ${id}`);
    return parseDeadLetter(entry[0], entry[1]);
  }

  // Enqueue first, then delete: a crash in between leaves a duplicate, never a loss.
  async function redriveOne(letter: DeadLetter): Promise<{ id: string; requestId: string }> {
    const requestId = randomUUID();
    await queue.enqueue({
      functionName: letter.functionName,
      ...(letter.qualifier ? { qualifier: letter.qualifier } : {}),
      requestId,
      payload: letter.payload,
    });
    await connection.xdel(key(letter.functionName), letter.id);
    return { id: letter.id, requestId };
  }

  return {
    async list(functionName, page) {
      if (page.after !== undefined && !STREAM_ID.test(page.after)) {
        throw new GatewayError('InvalidParameterValueException', `not a page token: ${page.after}`);
      }
      await connected();
      const start = page.after ? `(${page.after}` : '-';
      const entries = await connection.xrange(key(functionName), start, '+', 'COUNT', page.limit + 1);
      const items = entries.slice(0, page.limit).map(([id, fields]) => parseDeadLetter(id, fields));
      const last = items.at(-1);
      return entries.length > page.limit && last ? { items, nextToken: last.id } : { items };
    },
    get,
    async size(functionName) {
      await connected();
      return connection.xlen(key(functionName));
    },
    async redrive(functionName, id) {
      return redriveOne(await get(functionName, id));
    },
    async redriveAll(functionName) {
      await connected();
      // Entries added while redriving (a redriven event failing again) wait for the next call.
      const end = (await connection.xrevrange(key(functionName), '+', '-', 'COUNT', 1))[0]?.[0];
      let redriven = 0;
      if (!end) return { redriven };
      let start = '-';
      for (;;) {
        const entries = await connection.xrange(key(functionName), start, end, 'COUNT', REDRIVE_PAGE);
        for (const [id, fields] of entries) {
          await redriveOne(parseDeadLetter(id, fields));
          redriven += 1;
        }
        const last = entries.at(-1);
        if (entries.length < REDRIVE_PAGE || !last) return { redriven };
        start = `(${last[0]}`;
      }
    },
    async remove(functionName, id) {
      await get(functionName, id);
      await connection.xdel(key(functionName), id);
    },
    async purge(functionName) {
      await connected();
      const purged = await connection.xlen(key(functionName));
      await connection.del(key(functionName));
      return { purged };
    },
  };
}
