import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RedisKeys } from '@hearth/api';
import type { DestinationRecord } from '@hearth/gateway/async/index';
import { startRedis, type RedisServer } from '../harness/index.js';
import { API_KEY, GatewayFixture, type RunningGateway } from '../gateway/fixture.js';
import { waitFor } from './fixtures.js';

/**
 * The async side end to end through real processes: Event calls to a gateway (HTTP role), a
 * separate worker gateway (worker role) killed with SIGKILL mid-run, Redis restarted, runtime
 * shims running the function; then the failures through the DLQ API and the onFailure stream.
 */
const EVENTS = 40;
const plannedFailure = (seq: number) => seq % 10 === 0;

let redis: RedisServer;
let fixture: GatewayFixture;
let recorder: Server;
const deliveries = new Map<number, number>();

before(async () => {
  redis = await startRedis({ appendOnly: true });
  fixture = new GatewayFixture(redis.url);
  recorder = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const { seq } = JSON.parse(Buffer.concat(chunks).toString()) as { seq: number };
      deliveries.set(seq, (deliveries.get(seq) ?? 0) + 1);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
});

after(async () => {
  await fixture?.stop();
  await new Promise((resolve) => recorder?.close(resolve));
  await redis?.stop();
});

const workerEnv = {
  HEARTH_GATEWAY_ROLE: 'worker',
  HEARTH_ASYNC_CONCURRENCY: '4',
  // Short locks so that the killed worker's events come back within seconds, not minutes.
  HEARTH_ASYNC_LOCK_MS: '2000',
  HEARTH_ASYNC_STALLED_INTERVAL_MS: '1000',
  HEARTH_ASYNC_REQUEUE_MIN_MS: '100',
  HEARTH_ASYNC_REQUEUE_MAX_MS: '1000',
};

test(
  'Event calls through real gateway and worker processes and runtime shims survive a killed worker and a Redis restart',
  { timeout: 150_000 },
  async (t) => {
    const recorderUrl = `http://127.0.0.1:${(recorder.address() as AddressInfo).port}/delivered`;
    const route = await fixture.addFunction({
      name: 'orders',
      source: `
export const handler = async (event) => {
  if (event.fail) throw new Error('planned failure of ' + event.seq);
  const answer = await fetch(${JSON.stringify(recorderUrl)}, { method: 'POST', body: JSON.stringify({ seq: event.seq }) });
  if (!answer.ok) throw new Error('recorder answered ' + answer.status);
  return { seq: event.seq };
};`,
      spec: { async: { maxRetryAttempts: 0, onFailure: { stream: 'e2e-order-failures' } } },
    });
    await Promise.all([fixture.addInstance(route), fixture.addInstance(route)]);
    const front = await fixture.startGateway({ HEARTH_GATEWAY_ROLE: 'http' });
    let worker: RunningGateway = await fixture.startGateway(workerEnv);
    const api = (path: string, init: RequestInit = {}) =>
      fetch(`${front.url}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${API_KEY}`, ...init.headers },
      });

    const acknowledged = new Set<number>();
    const send = async (seq: number) => {
      const response = await api('/2015-03-31/functions/orders/invocations', {
        method: 'POST',
        headers: { 'x-amz-invocation-type': 'Event' },
        body: JSON.stringify({ seq, fail: plannedFailure(seq) }),
      });
      assert.equal(response.status, 202, await response.text());
      assert.ok(response.headers.get('x-amzn-requestid'));
      acknowledged.add(seq);
    };
    for (let seq = 0; seq < EVENTS / 2; seq += 1) await send(seq);

    await waitFor('the worker to deliver some events', () => deliveries.size >= 5, 60_000);
    await worker.process.stop('SIGKILL');
    for (let seq = EVENTS / 2; seq < (3 * EVENTS) / 4; seq += 1) await send(seq);
    await redis.restart('SIGKILL');
    worker = await fixture.startGateway(workerEnv);
    await waitFor(
      'the front gateway to take events again',
      async () => (await api('/healthz')).status === 200,
    );
    for (let seq = (3 * EVENTS) / 4; seq < EVENTS; seq += 1) {
      // The front gateway's connection may still be coming back: a refused call is retried, as by a client.
      await waitFor(
        `event ${seq} to be accepted`,
        () =>
          send(seq).then(
            () => true,
            () => false,
          ),
        10_000,
      );
    }

    const deadLettered = async () =>
      new Set(
        (await fixture.redis.xrange(RedisKeys.dlq('orders'), '-', '+')).map(
          ([, f]) => (JSON.parse(f[f.indexOf('payload') + 1]!) as { seq: number }).seq,
        ),
      );
    const missing = async () => {
      const dead = await deadLettered();
      return [...acknowledged].filter((seq) => !deliveries.has(seq) && !dead.has(seq));
    };
    await waitFor(
      'every accepted event to be delivered or dead-lettered',
      async () => (await missing()).length === 0,
      90_000,
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}: missing ${(await missing()).join(', ')}`);
    });
    const duplicates = [...deliveries.values()].reduce((sum, n) => sum + n - 1, 0);
    t.diagnostic(`delivered ${deliveries.size} distinct events with ${duplicates} duplicates`);
    const failures = [...acknowledged].filter(plannedFailure).sort((a, b) => a - b);
    assert.deepEqual(
      [...(await deadLettered())].sort((a, b) => a - b),
      failures,
    );

    // The failures, as the DLQ API shows them through the gateway (authenticated).
    assert.equal((await fetch(`${front.url}/hearth/v1/functions/orders/dlq`)).status, 403);
    const listed = (await (await api('/hearth/v1/functions/orders/dlq?limit=100')).json()) as {
      items: { id: string; errorMessage: string; condition: string }[];
      size: number;
    };
    assert.equal(listed.size, failures.length);
    assert.ok(
      listed.items.every(
        (l) => l.condition === 'RetriesExhausted' && l.errorMessage.startsWith('planned failure of'),
      ),
    );

    // ... and as the onFailure stream received them, in Lambda's record shape.
    const records = await waitFor('the failure records', async () => {
      const entries = await fixture.redis.xrange('e2e-order-failures', '-', '+');
      return (
        entries.length >= failures.length && entries.map(([, f]) => JSON.parse(f[1]!) as DestinationRecord)
      );
    });
    for (const record of records) {
      assert.equal(record.version, '1.0');
      assert.equal(record.requestContext.condition, 'RetriesExhausted');
      assert.equal(
        record.requestContext.functionArn,
        'arn:aws:lambda:us-east-1:000000000000:function:orders:$LATEST',
      );
      assert.equal(record.responseContext.functionError, 'Unhandled');
      assert.match(
        (record.responsePayload as { errorMessage: string }).errorMessage,
        /^planned failure of \d+$/,
      );
    }

    const purged = (await (await api('/hearth/v1/functions/orders/dlq', { method: 'DELETE' })).json()) as {
      purged: number;
    };
    assert.equal(purged.purged, failures.length);
    const metrics = await (await fetch(`${front.url}/metrics`)).text();
    assert.match(metrics, /hearth_async_queue_depth\{function="orders"\} 0/);
    assert.match(metrics, /hearth_async_dlq_size\{function="orders"\} 0/);
    assert.equal(worker.process.child.exitCode, null);
  },
);
