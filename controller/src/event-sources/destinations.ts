import type { Redis } from 'ioredis';
import { request } from 'undici';
import type { Destination } from '@hearth/api';
import type { DestinationSender, FunctionInvoker } from './types.js';

export interface DestinationSenderOptions {
  /** Hearth's own Redis: stream destinations are its streams. */
  redis: Redis;
  /** Function destinations are invoked asynchronously through it. */
  invoker: FunctionInvoker;
  /** How long an HTTP destination may take to answer. Default 10 s. */
  httpTimeoutMs?: number;
  /** Approximate cap on a destination stream's length (XADD MAXLEN ~). Default 100,000. */
  streamMaxLength?: number;
}

/**
 * Sends failure records where a mapping's onFailure points: a function (an async invoke), a URL
 * (POST of the JSON) or a Redis stream (XADD, the JSON in the field `record`, as the gateway's
 * async destinations write it). Rejects when the record was not taken, so the caller can retry.
 */
export function createDestinationSender(options: DestinationSenderOptions): DestinationSender {
  const httpTimeoutMs = options.httpTimeoutMs ?? 10_000;
  const streamMaxLength = options.streamMaxLength ?? 100_000;
  return async (destination: Destination, record: unknown) => {
    const body = JSON.stringify(record);
    if (destination.function) {
      const outcome = await options.invoker.invoke(destination.function, record, { async: true });
      if (outcome.kind !== 'success') {
        const detail =
          outcome.kind === 'functionError'
            ? outcome.errorType
            : outcome.kind === 'unavailable'
              ? outcome.message
              : 'throttled';
        throw new Error(`function ${destination.function} did not take the record: ${detail}`);
      }
    } else if (destination.url) {
      const response = await request(destination.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        headersTimeout: httpTimeoutMs,
        bodyTimeout: httpTimeoutMs,
      });
      await response.body.dump();
      if (response.statusCode >= 300) throw new Error(`${destination.url} answered ${response.statusCode}`);
    } else if (destination.stream) {
      await options.redis.xadd(destination.stream, 'MAXLEN', '~', streamMaxLength, '*', 'record', body);
    } else {
      throw new Error('the destination names no function, url or stream');
    }
  };
}
