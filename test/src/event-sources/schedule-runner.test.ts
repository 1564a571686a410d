import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { RedisKeys, validateEventSourceMappingSpec, type EventSourceMappingStatus } from '@hearth/api';
import { EventSourceMetrics } from '@hearth/controller/event-sources/metrics';
import { runSchedule, tickRequestId } from '@hearth/controller/event-sources/schedule';
import type { InvokeOutcome, MappingContext } from '@hearth/controller/event-sources/types';
import { startRedis } from '../harness/index.js';

/**
 * The gateway's answers are scripted here (the two-controller test runs a real one): a gateway
 * that is restarting or throttling must not cost a tick.
 */
test('a tick the gateway throttles or cannot take is retried until it is accepted, once', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const answers: InvokeOutcome[] = [
    { kind: 'unavailable', message: 'gateway unreachable: ECONNREFUSED' },
    { kind: 'throttled', retryAfterMs: 100 },
  ];
  const calls: { time: string; at: number }[] = [];
  const ids = new Set<string>();
  const statuses: Partial<EventSourceMappingStatus>[] = [];
  const metrics = new EventSourceMetrics(new Registry());
  const { spec } = validateEventSourceMappingSpec({
    functionName: 'ticker',
    source: { schedule: { expression: 'rate(5 seconds)' } },
  });
  assert.ok(spec);
  const ctx: MappingContext = {
    id: 'default/every-five',
    name: 'every-five',
    namespace: 'default',
    uid: 'u',
    spec,
    invoker: {
      invoke: (_fn, event, options) => {
        assert.equal(options?.async, true);
        // Every attempt of a tick carries the tick's own request id, which is the event's id too.
        assert.equal(options?.requestId, (event as { id: string }).id);
        calls.push({ time: (event as { time: string }).time, at: Date.now() });
        ids.add(options!.requestId!);
        return Promise.resolve(answers.shift() ?? { kind: 'success', payload: '' });
      },
    },
    redisUrl: redis.url,
    sendToDestination: () => Promise.resolve(),
    metrics,
    logger: pino({ level: 'silent' }),
    region: 'eu-west-1',
    accountId: '123456789012',
    reportStatus: (patch) => statuses.push(patch),
  };
  const runner = runSchedule(ctx);
  try {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && !statuses.some((s) => s.lastProcessingResult === 'OK')) await sleep(50);
  } finally {
    await runner.stop();
  }
  // Three calls for the first tick (unavailable, throttled, accepted), all with that tick's event.
  assert.equal(calls.length, 3, JSON.stringify(calls));
  assert.equal(new Set(calls.map((c) => c.time)).size, 1);
  const tick = Date.parse(calls[0]!.time);
  assert.equal(ids.size, 1);
  assert.equal([...ids][0], tickRequestId('u', tick), "the request id is the mapping and tick's own");
  assert.equal(tick % 5000, 0, 'rate ticks fall on multiples of the period');
  assert.ok(calls[0]!.at >= tick, 'never fired before its time');
  assert.ok(calls[2]!.at - calls[1]!.at >= 100, 'waited as Retry-After said');
  assert.deepEqual(statuses.at(-1), {
    lastProcessedPosition: calls[0]!.time,
    lastProcessingResult: 'OK',
    lastError: undefined,
  });
  const { values } = await metrics.invocations.get();
  assert.deepEqual(
    values.map((v) => [v.labels.outcome, v.value]),
    [['success', 1]],
  );
  // The tick stays claimed: another controller would not invoke it again.
  const client = new Redis(redis.url);
  try {
    assert.ok(await client.get(RedisKeys.scheduleTick('every-five', tick)));
  } finally {
    client.disconnect();
  }
});
