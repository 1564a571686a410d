import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { RedisKeys, type EventSourceMappingStatus } from '@hearth/api';
import { startProcessController } from '@hearth/controller';
import { EventSourceMetrics } from '@hearth/controller/event-sources/metrics';
import { startRedis } from '../harness/index.js';
import { API_KEY, GatewayFixture } from '../gateway/fixture.js';

interface KinesisEvent {
  Records: { eventSource: string; kinesis: { data: string; sequenceNumber: string } }[];
}

test('process mode: a Redis Streams mapping manifest delivers XADDed records to its function, with status', async (t) => {
  const redis = await startRedis();
  const fixture = new GatewayFixture(redis.url);
  const batches: KinesisEvent[] = [];
  const recorder = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      batches.push(JSON.parse(body) as KinesisEvent);
      response.end('ok');
    });
  });
  await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
  const recorderUrl = `http://127.0.0.1:${(recorder.address() as AddressInfo).port}`;
  const dir = await mkdtemp(join(tmpdir(), 'hearth-mappings-'));
  let stopController = () => Promise.resolve();
  t.after(async () => {
    await stopController();
    await fixture.stop();
    recorder.closeAllConnections();
    recorder.close();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const code = `export const handler = async (event) => {
    await fetch(process.env.RECORDER_URL, { method: 'POST', body: JSON.stringify(event) });
    return {};
  };`;
  await writeFile(
    join(dir, 'collector.json'),
    JSON.stringify({
      apiVersion: 'hearth.dev/v1alpha1',
      kind: 'Function',
      metadata: { name: 'collector' },
      spec: {
        runtime: 'nodejs20.x',
        code: { inline: { files: { 'index.mjs': code } } },
        env: [{ name: 'RECORDER_URL', value: recorderUrl }],
        timeoutSeconds: 30,
      },
    }),
  );
  await writeFile(
    join(dir, 'orders.yaml'),
    `apiVersion: hearth.dev/v1alpha1
kind: EventSourceMapping
metadata: { name: orders }
spec:
  functionName: collector
  startingPosition: TRIM_HORIZON
  batchSize: 10
  source: { redisStream: { stream: orders } }
---
apiVersion: hearth.dev/v1alpha1
kind: EventSourceMapping
metadata: { name: oversized }
spec:
  functionName: collector
  batchSize: 20000
  source: { redisStream: { stream: orders } }
`,
  );
  // Records written before the mapping exists are read too (TRIM_HORIZON).
  const ids = [await fixture.redis.xadd('orders', '*', 'data', 'order-1')];
  const gateway = await fixture.startGateway();
  const controller = await startProcessController({
    redisUrl: redis.url,
    functionsDir: dir,
    isolation: 'portable',
    logger: pino({ level: process.env.HEARTH_TEST_LOGS === '1' ? 'debug' : 'silent' }),
    instanceOutput: () => undefined,
    scanIntervalMs: 500,
    eventSources: {
      gatewayUrl: gateway.url,
      gatewayToken: API_KEY,
      metrics: new EventSourceMetrics(new Registry()),
      retryBaseDelayMs: 50,
    },
  });
  stopController = () => controller.stop();
  for (const n of [2, 3]) ids.push(await fixture.redis.xadd('orders', '*', 'data', `order-${n}`));

  const seen = () =>
    batches.flatMap((b) => b.Records.map((r) => Buffer.from(r.kinesis.data, 'base64').toString()));
  const status = async (name: string) => {
    const json = await fixture.redis.hget(RedisKeys.mappingStatus, name);
    return json ? (JSON.parse(json) as EventSourceMappingStatus) : undefined;
  };
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (seen().length >= 3 && (await status('orders'))?.lastProcessedPosition === ids[2]) break;
    await sleep(100);
  }
  assert.deepEqual(seen(), ['order-1', 'order-2', 'order-3'], 'each record once, in order');
  assert.equal(batches[0]!.Records[0]!.eventSource, 'aws:kinesis');
  const orders = await status('orders');
  assert.equal(orders?.state, 'Enabled');
  assert.equal(orders?.lastProcessedPosition, ids[2]);

  // The invalid mapping runs nowhere, and says why, naming the file and the field.
  const oversized = await status('oversized');
  assert.equal(oversized?.state, 'Failed');
  assert.match(oversized?.stateReason ?? '', /^spec\.batchSize /);
  assert.deepEqual(
    controller.problems().map((p) => [p.file, p.kind, p.name, p.path]),
    [['orders.yaml', 'EventSourceMapping', 'oversized', 'spec.batchSize']],
  );
});
