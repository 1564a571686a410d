/**
 * A Redis Streams mapping in a process of its own, as a controller runs it, so that a test can
 * SIGKILL it mid-batch: the Redis source and the stream runner invoking a function through a
 * real gateway, with the mapping's metrics served on GET /metrics.
 *
 * Environment: REDIS_URL, GATEWAY_URL, GATEWAY_TOKEN, FUNCTION_NAME, STREAM, GROUP, CONSUMER,
 * BATCH_SIZE, METRICS_PORT.
 */
import { createServer } from 'node:http';
import { Redis } from 'ioredis';
import { openRedisStreamSource } from '@hearth/controller/event-sources/redis-stream-source';
import { runStreamMapping } from '@hearth/controller/event-sources/stream-runner';
import { testMapping } from './stream-fixture.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};

const redisUrl = env('REDIS_URL');
const redis = new Redis(redisUrl);
const mapping = testMapping({
  name: 'killed-mid-batch',
  spec: {
    functionName: env('FUNCTION_NAME'),
    source: { redisStream: { stream: env('STREAM'), group: env('GROUP') } },
    startingPosition: 'TRIM_HORIZON',
    batchSize: Number(env('BATCH_SIZE')),
  },
  gatewayUrl: env('GATEWAY_URL'),
  token: env('GATEWAY_TOKEN'),
  redisUrl,
  redis,
});
const source = await openRedisStreamSource({
  redisUrl,
  stream: env('STREAM'),
  group: env('GROUP'),
  consumer: env('CONSUMER'),
  position: mapping.spec,
});
const runner = runStreamMapping(mapping.ctx, source, { retryBaseDelayMs: 50, retryMaxDelayMs: 200 });

const registry = mapping.metrics.registry;
const server = createServer((_request, response) => {
  void registry.metrics().then((text) => {
    response.setHeader('content-type', registry.contentType);
    response.end(text);
  });
});
server.listen(Number(env('METRICS_PORT')), '127.0.0.1', () => process.stdout.write('mapping running\n'));

process.once('SIGTERM', () => {
  void runner.stop().then(async () => {
    server.close();
    await mapping.close();
    redis.disconnect();
    process.exit(0);
  });
});
