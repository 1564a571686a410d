import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { RedisKeys } from '@hearth/api';
import { GatewayError } from '@hearth/gateway/core/errors';
import { StaticDiscovery } from '@hearth/gateway/discovery/static';
import {
  createAsyncQueue,
  createDlqRouter,
  startWorkers,
  type AsyncQueue,
  type AsyncWorkersOptions,
  type DeadLetter,
  type DestinationRecord,
} from '@hearth/gateway/async/index';
import { useRedis } from '../harness/index.js';
import {
  ScriptedInvoker,
  fastWorkerSettings,
  functionFailed,
  functionRoute,
  succeeded,
  waitFor,
} from './fixtures.js';

const logger = pino({ level: process.env.HEARTH_TEST_LOGS === '1' ? 'debug' : 'silent' });

const shared = useRedis();

/** A queue and workers over the shared Redis, stopped when the test ends. */
async function platform(
  t: { after: (fn: () => Promise<void>) => void },
  invoker: ScriptedInvoker,
  overrides: Partial<AsyncWorkersOptions> = {},
) {
  const discovery = new StaticDiscovery();
  const metricsRegistry = new Registry();
  const queue = createAsyncQueue({ redisUrl: shared.server.url, discovery, logger, metricsRegistry });
  const workers = await startWorkers({
    redisUrl: shared.server.url,
    invoker,
    discovery,
    asyncQueue: queue,
    logger,
    metricsRegistry,
    ...fastWorkerSettings,
    ...overrides,
  });
  t.after(async () => {
    await workers.stop();
    await queue.close();
  });
  return { discovery, queue, workers, metricsRegistry };
}

const uniqueName = (base: string) => `${base}-${randomUUID().slice(0, 8)}`;

async function deadLetters(functionName: string) {
  return (await shared.client.xrange(RedisKeys.dlq(functionName), '-', '+')).map(([id, flat]) => {
    const fields: Record<string, string> = { id };
    for (let i = 0; i < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
    return fields;
  });
}

function waitForDeadLetters(functionName: string) {
  return waitFor(`a dead letter of ${functionName}`, async () => {
    const letters = await deadLetters(functionName);
    return letters.length > 0 && letters;
  });
}

function waitForStream(stream: string) {
  return waitFor(`an entry in ${stream}`, async () => {
    const entries = await shared.client.xrange(stream, '-', '+');
    return entries.length > 0 && entries;
  });
}

async function enqueue(queue: AsyncQueue, functionName: string, payload: unknown) {
  const requestId = randomUUID();
  await queue.enqueue({ functionName, requestId, payload: Buffer.from(JSON.stringify(payload)) });
  return requestId;
}

describe('retries and dead letters', () => {
  test('a failing function runs 3 times with the configured delays, then its event is dead-lettered', async (t) => {
    const name = uniqueName('fails');
    const invoker = new ScriptedInvoker().on(name, () => functionFailed('Error', 'boom'));
    const { discovery, queue } = await platform(t, invoker);
    discovery.setFunction(functionRoute(name));
    const requestId = await enqueue(queue, name, { order: 1 });

    const [letter] = await waitForDeadLetters(name);
    const calls = invoker.callsOf(name);
    assert.equal(calls.length, 3, 'the first run and 2 retries');
    assert.ok(calls.every((c) => c.request.requestId === requestId && c.request.source === 'async'));
    const gaps = [calls[1]!.at - calls[0]!.at, calls[2]!.at - calls[1]!.at];
    assert.ok(gaps[0]! >= 140 && gaps[0]! < 2000, `1st retry after ~150 ms, was ${gaps[0]}`);
    assert.ok(gaps[1]! >= 290 && gaps[1]! < 2500, `2nd retry after ~300 ms, was ${gaps[1]}`);
    assert.equal(letter!.requestId, requestId);
    assert.equal(letter!.condition, 'RetriesExhausted');
    assert.equal(letter!.attempts, '3');
    assert.equal(letter!.errorType, 'Error');
    assert.equal(letter!.errorMessage, 'boom');
    assert.deepEqual(JSON.parse(letter!.payload!), { order: 1 });
    assert.ok(Date.parse(letter!.deadLetteredAt!) >= Date.parse(letter!.acceptedAt!));
  });

  test('maxRetryAttempts 0 dead-letters after the first failure', async (t) => {
    const name = uniqueName('no-retry');
    const invoker = new ScriptedInvoker().on(name, () =>
      functionFailed('Sandbox.Timedout', 'Task timed out after 3.00 seconds'),
    );
    const { discovery, queue } = await platform(t, invoker);
    discovery.setFunction(functionRoute(name, { maxRetryAttempts: 0 }));
    await enqueue(queue, name, {});
    const [letter] = await waitForDeadLetters(name);
    await new Promise((r) => setTimeout(r, 400)); // a retry, had there been one, would have run by now
    assert.equal(invoker.callsOf(name).length, 1);
    assert.equal(letter!.errorType, 'Sandbox.Timedout');
  });

  test('throttles and system errors go back on the queue without using an attempt', async (t) => {
    const name = uniqueName('throttled');
    // 3 throttles, a system error, then the function fails every time it really runs.
    const invoker = new ScriptedInvoker().on(name, (_request, call) => {
      if (call <= 3)
        throw new GatewayError('TooManyRequestsException', 'Rate Exceeded.', {
          Reason: 'ReservedFunctionConcurrentInvocationLimitExceeded',
        });
      if (call === 4) throw new GatewayError('ServiceException', 'instance vanished');
      return functionFailed('Error', 'boom');
    });
    const { discovery, queue, metricsRegistry } = await platform(t, invoker);
    discovery.setFunction(functionRoute(name, { maxRetryAttempts: 1 }));
    await enqueue(queue, name, {});

    const [letter] = await waitForDeadLetters(name);
    const calls = invoker.callsOf(name);
    assert.equal(calls.length, 6, '4 requeues, then the run and its 1 retry');
    assert.equal(letter!.attempts, '2');
    assert.equal(letter!.invocations, '2');
    const backoffs = [1, 2, 3].map((i) => calls[i]!.at - calls[i - 1]!.at);
    // 40, 80, 160 ms, each jittered by up to a quarter (the first never below 40).
    assert.ok(
      backoffs[0]! >= 35 && backoffs[1]! >= 55 && backoffs[2]! >= 115,
      `exponential backoff from 40 ms, was ${backoffs.join(', ')}`,
    );
    const metrics = await metricsRegistry.metrics();
    assert.match(
      metrics,
      new RegExp(`hearth_async_retries_total\\{function="${name}",reason="throttle"\\} 3`),
    );
    assert.match(
      metrics,
      new RegExp(`hearth_async_retries_total\\{function="${name}",reason="system_error"\\} 1`),
    );
    assert.match(
      metrics,
      new RegExp(`hearth_async_retries_total\\{function="${name}",reason="function_error"\\} 1`),
    );
    // Counted just after the dead letter is written.
    await waitFor('the dead-letter count', async () =>
      new RegExp(
        `hearth_async_dead_lettered_total\\{function="${name}",condition="RetriesExhausted"\\} 1`,
      ).test(await metricsRegistry.metrics()),
    );
  });

  test('an event older than maxEventAgeSeconds is discarded as EventAgeExceeded', async (t) => {
    const name = uniqueName('too-old');
    const stream = `test-failures-${name}`;
    let clockOffsetMs = 0;
    // Throttled until the clock moves past the function's 60 s maximum age.
    const invoker = new ScriptedInvoker().on(name, (_request, call) => {
      if (call === 2) clockOffsetMs = 61_000;
      throw new GatewayError('TooManyRequestsException', 'Rate Exceeded.');
    });
    const { discovery, queue } = await platform(t, invoker, { now: () => Date.now() + clockOffsetMs });
    discovery.setFunction(functionRoute(name, { maxEventAgeSeconds: 60, onFailure: { stream } }));
    const requestId = await enqueue(queue, name, { late: true });

    const [letter] = await waitForDeadLetters(name);
    assert.equal(letter!.condition, 'EventAgeExceeded');
    assert.equal(letter!.errorType, 'TooManyRequestsException');
    assert.equal(invoker.callsOf(name).length, 2);
    const [entry] = await waitForStream(stream);
    const record = JSON.parse(entry![1][1]!);
    assert.equal(record.requestContext.condition, 'EventAgeExceeded');
    assert.equal(record.requestContext.requestId, requestId);
    assert.equal(record.requestContext.approximateInvokeCount, 0);
    assert.deepEqual(record.responseContext, { statusCode: 429, executedVersion: '$LATEST' });
  });

  test('reserved concurrency 0 sends events straight to the failure path without running them', async (t) => {
    const name = uniqueName('reserved-zero');
    const invoker = new ScriptedInvoker().on(name, () => succeeded('ran'));
    const { discovery, queue } = await platform(t, invoker);
    discovery.setFunction(functionRoute(name, {}, 0));
    await enqueue(queue, name, {});
    const [letter] = await waitForDeadLetters(name);
    assert.equal(letter!.errorType, 'TooManyRequestsException');
    assert.equal(letter!.invocations, '0');
    assert.equal(invoker.callsOf(name).length, 0);
  });
});

describe('destinations', () => {
  let server: Server;
  let received: { body: unknown; at: number }[] = [];
  let failNext = 0;
  let url: string;
  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (failNext > 0) {
          failNext -= 1;
          res.writeHead(503).end();
          return;
        }
        received.push({ body: JSON.parse(Buffer.concat(chunks).toString()), at: Date.now() });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('onSuccess to another function: it receives the success record as an async event', async (t) => {
    const source = uniqueName('source');
    const target = uniqueName('target');
    const invoker = new ScriptedInvoker()
      .on(source, (r) => succeeded({ echoed: JSON.parse(r.payload.toString()) }))
      .on(target, () => succeeded(null));
    const { discovery, queue } = await platform(t, invoker, {
      region: 'eu-west-1',
      accountId: '123456789012',
    });
    discovery.setFunction(functionRoute(source, { onSuccess: { function: target } }));
    discovery.setFunction(functionRoute(target));
    const requestId = await enqueue(queue, source, { n: 1 });

    const [call] = await waitFor(
      'the target to run',
      () => invoker.callsOf(target).length > 0 && invoker.callsOf(target),
    );
    const record = JSON.parse(call!.request.payload.toString());
    assert.equal(call!.request.source, 'async');
    assert.notEqual(call!.request.requestId, requestId);
    assert.ok(Date.parse(record.timestamp) > 0);
    delete record.timestamp;
    assert.deepEqual(record, {
      version: '1.0',
      requestContext: {
        requestId,
        functionArn: `arn:aws:lambda:eu-west-1:123456789012:function:${source}:$LATEST`,
        condition: 'Success',
        approximateInvokeCount: 1,
      },
      requestPayload: { n: 1 },
      responseContext: { statusCode: 200, executedVersion: '$LATEST' },
      responsePayload: { echoed: { n: 1 } },
    });
  });

  test('onFailure to an HTTP URL: POSTed once retries run out, retrying a failing endpoint', async (t) => {
    received = [];
    failNext = 1; // the first delivery gets a 503 and must be tried again
    const name = uniqueName('hooked');
    const invoker = new ScriptedInvoker().on(name, () => functionFailed('Error', 'no stock'));
    const { discovery, queue, metricsRegistry } = await platform(t, invoker);
    discovery.setFunction(functionRoute(name, { maxRetryAttempts: 1, onFailure: { url } }));
    const requestId = await enqueue(queue, name, { sku: 'x' });

    await waitFor('the hook to receive the record', () => received.length > 0);
    const record = received[0]!.body as DestinationRecord;
    assert.equal(failNext, 0, 'the 503 was seen');
    assert.equal(record.version, '1.0');
    assert.equal(record.requestContext.requestId, requestId);
    assert.equal(record.requestContext.condition, 'RetriesExhausted');
    assert.equal(record.requestContext.approximateInvokeCount, 2);
    assert.deepEqual(record.requestPayload, { sku: 'x' });
    assert.deepEqual(record.responseContext, {
      statusCode: 200,
      executedVersion: '$LATEST',
      functionError: 'Unhandled',
    });
    assert.deepEqual(record.responsePayload, { errorType: 'Error', errorMessage: 'no stock', trace: [] });
    const metrics = await metricsRegistry.metrics();
    assert.match(
      metrics,
      new RegExp(
        `hearth_async_destination_deliveries_total\\{function="${name}",destination="onFailure",kind="url",outcome="retried"\\} 1`,
      ),
    );
    await waitFor('the delivered count', async () =>
      /outcome="delivered"\} 1/.test(
        (await metricsRegistry.metrics())
          .split('\n')
          .filter((l) => l.includes(name))
          .join('\n'),
      ),
    );
  });

  test('a destination function that does not exist: the delivery is given up at once and counted as failed', async (t) => {
    const name = uniqueName('orphan');
    const invoker = new ScriptedInvoker().on(name, () => succeeded(1));
    const { discovery, queue, metricsRegistry } = await platform(t, invoker);
    discovery.setFunction(functionRoute(name, { onSuccess: { function: 'no-such-function' } }));
    await enqueue(queue, name, {});
    await waitFor('the failed delivery to be counted', async () =>
      new RegExp(
        `hearth_async_destination_deliveries_total\\{function="${name}",destination="onSuccess",kind="function",outcome="failed"\\} 1`,
      ).test(await metricsRegistry.metrics()),
    );
    assert.doesNotMatch(
      await metricsRegistry.metrics(),
      new RegExp(`function="${name}".*outcome="retried"`),
      'not retried',
    );
  });

  test('onSuccess to a Redis stream: XADDed as one record field', async (t) => {
    const name = uniqueName('streamed');
    const stream = `test-successes-${name}`;
    const invoker = new ScriptedInvoker().on(name, () => succeeded({ ok: true }));
    const { discovery, queue } = await platform(t, invoker);
    discovery.setFunction(functionRoute(name, { onSuccess: { stream } }));
    const requestId = await enqueue(queue, name, { a: 1 });
    const [entry] = await waitForStream(stream);
    assert.equal(entry![1][0], 'record');
    const record = JSON.parse(entry![1][1]!);
    assert.equal(record.requestContext.requestId, requestId);
    assert.equal(record.requestContext.condition, 'Success');
    assert.deepEqual(record.responsePayload, { ok: true });
  });
});

describe('the dead-letter API', () => {
  test('list (paged), show, redrive one, redrive all, remove, purge', async (t) => {
    const name = uniqueName('dlq-api');
    let healthy = false;
    const invoker = new ScriptedInvoker().on(name, () =>
      healthy ? succeeded('fine') : functionFailed('Error', 'down'),
    );
    const { discovery, queue } = await platform(t, invoker);
    discovery.setFunction(functionRoute(name, { maxRetryAttempts: 0 }));
    for (let i = 0; i < 5; i += 1) await enqueue(queue, name, { i });
    await waitFor('5 dead letters', async () => (await deadLetters(name)).length === 5);

    const app = express();
    app.use(createDlqRouter(queue.deadLetters));
    app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
      const status = error instanceof GatewayError ? error.status : 500;
      res.status(status).json({ message: (error as Error).message });
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hearth/v1/functions/${name}/dlq`;
    // Every field the DLQ API answers with; each call reads the ones its route returns.
    type DlqAnswer = DeadLetter & {
      items: DeadLetter[];
      nextToken?: string;
      size: number;
      redriven: number;
      purged: number;
    };
    const call = async (method: string, path = '') => {
      const response = await fetch(`${base}${path}`, { method });
      return {
        status: response.status,
        body: (response.status === 204 ? {} : await response.json()) as DlqAnswer,
      };
    };

    const first = await call('GET', '?limit=2');
    assert.equal(first.status, 200);
    assert.equal(first.body.size, 5);
    assert.equal(first.body.items.length, 2);
    assert.ok(first.body.nextToken);
    const rest = await call('GET', `?limit=10&nextToken=${first.body.nextToken}`);
    assert.deepEqual(
      // Events run concurrently, so they reach the DLQ in any order; the pages must cover each once.
      [...first.body.items, ...rest.body.items].map((l) => (JSON.parse(l.payload) as { i: number }).i).sort(),
      [0, 1, 2, 3, 4],
    );
    assert.equal(rest.body.nextToken, undefined);

    const one = first.body.items[0]!;
    const shown = await call('GET', `/${one.id}`);
    assert.equal(shown.body.requestId, one.requestId);
    assert.equal(shown.body.condition, 'RetriesExhausted');
    assert.equal((await call('GET', '/1-0')).status, 404);
    assert.equal((await call('GET', '?limit=0')).status, 400);
    assert.equal(
      (await fetch(base.replace(`/${name}/`, '/no%20such%20name/'))).status,
      400,
      'not a function name',
    );

    healthy = true;
    const redriven = await call('POST', `/${one.id}/redrive`);
    assert.equal(redriven.status, 200);
    await waitFor('the redriven event to run', () =>
      invoker.callsOf(name).some((c) => c.request.requestId === redriven.body.requestId),
    );
    assert.equal((await call('GET', `/${one.id}`)).status, 404, 'a redriven entry leaves the DLQ');

    assert.equal((await call('DELETE', `/${first.body.items[1]!.id}`)).status, 204);
    assert.equal((await call('GET')).body.size, 3);

    const callsBefore = invoker.callsOf(name).length;
    const all = await call('POST', '/redrive');
    assert.deepEqual(all.body, { redriven: 3 });
    await waitFor('the 3 redriven events to run', () => invoker.callsOf(name).length === callsBefore + 3);
    assert.equal((await call('GET')).body.size, 0);

    healthy = false;
    await enqueue(queue, name, { i: 9 });
    await waitFor('a new dead letter', async () => (await deadLetters(name)).length === 1);
    assert.deepEqual((await call('DELETE')).body, { purged: 1 });
    assert.equal((await call('GET')).body.size, 0);
  });
});

describe('the dead-letter queue under a full backlog', () => {
  test('redrive-all stops at the first 429 and keeps the entries it could not redrive', async () => {
    const discovery = new StaticDiscovery();
    const name = uniqueName('redrive-full');
    discovery.setFunction(functionRoute(name));
    // No workers, and room for one event: the second redrive is refused.
    const queue = createAsyncQueue({
      redisUrl: shared.server.url,
      discovery,
      logger,
      limits: { maxDepth: 1 },
    });
    try {
      for (let i = 0; i < 3; i += 1) {
        await shared.client.xadd(
          RedisKeys.dlq(name),
          '*',
          'functionName',
          name,
          'requestId',
          randomUUID(),
          'payload',
          JSON.stringify({ i }),
          'condition',
          'RetriesExhausted',
        );
      }
      await assert.rejects(queue.deadLetters.redriveAll(name), (e: GatewayError) => e.status === 429);
      assert.equal(await queue.deadLetters.size(name), 2, 'the redriven entry left, the refused ones stayed');
      assert.equal((await queue.backlog(name)).depth, 1);
    } finally {
      await queue.close();
    }
  });
});

describe('accepting events', () => {
  test('a backlog over its depth limit answers 429 until it drains; age limit too', async () => {
    const discovery = new StaticDiscovery();
    const metricsRegistry = new Registry();
    const name = uniqueName('backlog');
    discovery.setFunction(functionRoute(name));
    // No workers: the backlog only grows.
    const queue = createAsyncQueue({
      redisUrl: shared.server.url,
      discovery,
      logger,
      metricsRegistry,
      limits: { maxDepth: 3, maxOldestAgeSeconds: 3600 },
    });
    try {
      for (let i = 0; i < 3; i += 1) await enqueue(queue, name, { i });
      await assert.rejects(
        enqueue(queue, name, { i: 3 }),
        (e: GatewayError) => e.status === 429 && e.code === 'TooManyRequestsException',
      );
      const metrics = await metricsRegistry.metrics();
      assert.match(metrics, new RegExp(`hearth_async_queue_depth\\{function="${name}"\\} 3`));
      assert.match(
        metrics,
        new RegExp(`hearth_async_events_rejected_total\\{function="${name}",reason="depth"\\} 1`),
      );
      assert.match(
        metrics,
        new RegExp(`hearth_async_oldest_event_age_seconds\\{function="${name}"\\} [0-9.]+`),
      );
    } finally {
      await queue.close();
    }

    const aged = uniqueName('aged');
    discovery.setFunction(functionRoute(aged));
    const strict = createAsyncQueue({
      redisUrl: shared.server.url,
      discovery,
      logger,
      limits: { maxDepth: 100, maxOldestAgeSeconds: 1 },
    });
    try {
      await enqueue(strict, aged, {});
      await enqueue(strict, aged, {});
      await new Promise((r) => setTimeout(r, 1100));
      const backlog = await strict.backlog(aged);
      assert.ok(backlog.oldestWaitingAgeMs >= 1000, `oldest waiting age ${backlog.oldestWaitingAgeMs}`);
      await assert.rejects(enqueue(strict, aged, {}), (e: GatewayError) => e.status === 429);
    } finally {
      await strict.close();
    }
  });

  test('two gateways storing events at once never pass the depth limit together', async () => {
    const discovery = new StaticDiscovery();
    const name = uniqueName('concurrent');
    discovery.setFunction(functionRoute(name));
    // Two producers with connections of their own, as two gateway replicas have; no workers.
    const limits = { maxDepth: 25, maxOldestAgeSeconds: 3600 };
    const gateways = [0, 1].map(() =>
      createAsyncQueue({ redisUrl: shared.server.url, discovery, logger, limits }),
    );
    try {
      // 2 x 60 calls in flight together: each sees the backlog before most of the others stored.
      const outcomes = await Promise.all(
        gateways.flatMap((queue) =>
          Array.from({ length: 60 }, () =>
            enqueue(queue, name, {}).then(
              () => 202,
              (e: GatewayError) => e.status,
            ),
          ),
        ),
      );
      assert.deepEqual(new Set(outcomes), new Set([202, 429]));
      assert.equal(outcomes.filter((s) => s === 202).length, 25, 'exactly the limit accepted');
      assert.equal((await gateways[0]!.backlog(name)).depth, 25);
      // The places reserved while storing were all given back: the stored jobs alone count now.
      await waitFor(
        'reservations given back',
        async () => (await shared.client.zcard(`hearth:async:reserving:${name}`)) === 0,
      );
      await assert.rejects(enqueue(gateways[1]!, name, {}), (e: GatewayError) => e.status === 429);
    } finally {
      await Promise.all(gateways.map((queue) => queue.close()));
    }
  });

  test('unknown function 404, body not JSON 400, too large 413, bad request id 400; a repeated request id is stored once', async () => {
    const discovery = new StaticDiscovery();
    const name = uniqueName('checks');
    discovery.setFunction(functionRoute(name));
    const queue = createAsyncQueue({ redisUrl: shared.server.url, discovery, logger, maxPayloadBytes: 1000 });
    try {
      const status = (request: Parameters<AsyncQueue['enqueue']>[0]) =>
        queue.enqueue(request).then(
          () => 202,
          (e: GatewayError) => e.status,
        );
      assert.equal(await status({ functionName: 'nope', requestId: randomUUID(), payload: '{}' }), 404);
      assert.equal(await status({ functionName: name, requestId: randomUUID(), payload: '{not json' }), 400);
      assert.equal(
        await status({
          functionName: name,
          requestId: randomUUID(),
          payload: JSON.stringify('x'.repeat(1001)),
        }),
        413,
      );
      assert.equal(await status({ functionName: name, requestId: '123', payload: '{}' }), 400);
      const requestId = randomUUID();
      assert.equal(await status({ functionName: name, requestId, payload: '{}' }), 202);
      assert.equal(await status({ functionName: name, requestId, payload: '{}' }), 202);
      assert.equal((await queue.backlog(name)).depth, 1);
    } finally {
      await queue.close();
    }
  });

  test('with Redis unreachable the producer refuses at once with a 500 instead of acknowledging', async () => {
    const discovery = new StaticDiscovery();
    const name = uniqueName('offline');
    discovery.setFunction(functionRoute(name));
    const queue = createAsyncQueue({ redisUrl: 'redis://127.0.0.1:1', discovery, logger });
    try {
      const started = Date.now();
      await assert.rejects(
        enqueue(queue, name, {}),
        (e: GatewayError) => e.status === 500 && e.code === 'ServiceException',
      );
      assert.ok(Date.now() - started < 2000, 'failed fast');
    } finally {
      await queue.close();
    }
  });
});
