/**
 * Redis Streams mappings end to end: a real Redis, a real gateway and runtime shims running the
 * handlers, the stream runner reading through a consumer group. Handlers report every call to a
 * recorder over HTTP, so the tests see exactly what a function saw and in which order.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, startRedis, type RedisServer } from '../harness/index.js';
import { API_KEY, GatewayFixture, type RunningGateway } from '../gateway/fixture.js';
import { laneOf } from '@hearth/controller/event-sources/batching';
import { createDestinationSender } from '@hearth/controller/event-sources/destinations';
import { GatewayInvoker } from '@hearth/controller/event-sources/gateway-invoker';
import { openRedisStreamSource } from '@hearth/controller/event-sources/redis-stream-source';
import { runStreamMapping } from '@hearth/controller/event-sources/stream-runner';
import {
  reportingHandler,
  startRecorder,
  testMapping,
  type HandlerReport,
  type Recorder,
} from './stream-fixture.js';

let redis: RedisServer;
let fixture: GatewayFixture;
let gateway: RunningGateway;

before(async () => {
  redis = await startRedis();
  fixture = new GatewayFixture(redis.url);
  gateway = await fixture.startGateway();
});

after(async () => {
  await fixture?.stop();
  await redis?.stop();
});

async function recorderFor(t: TestContext): Promise<Recorder> {
  const recorder = await startRecorder();
  t.after(() => recorder.close());
  return recorder;
}

/** Registers a Node function whose RECORDER variable points at `recorder`, and starts its instance. */
async function startFunction(name: string, source: string, recorder: Recorder): Promise<void> {
  const route = await fixture.addFunction({
    name,
    source,
    spec: { env: [{ name: 'RECORDER', value: recorder.url }] },
  });
  await fixture.addInstance(route);
}

/** Opens the stream with a consumer group and runs a mapping over it until the test ends. */
async function runMapping(
  t: TestContext,
  name: string,
  spec: Record<string, unknown>,
  retryBaseDelayMs = 50,
): Promise<ReturnType<typeof testMapping>> {
  const mapping = testMapping({
    name,
    spec,
    gatewayUrl: gateway.url,
    token: API_KEY,
    redisUrl: redis.url,
    redis: fixture.redis,
  });
  const stream = mapping.spec.source.redisStream!.stream;
  const source = await openRedisStreamSource({
    redisUrl: redis.url,
    stream,
    group: `hearth-${name}`,
    consumer: 'controller-1',
    position: mapping.spec,
  });
  const runner = runStreamMapping(mapping.ctx, source, {
    retryBaseDelayMs,
    retryMaxDelayMs: retryBaseDelayMs,
  });
  t.after(async () => {
    await runner.stop();
    await mapping.close();
  });
  return mapping;
}

/** The `n` field each record of a report carries (entries without a `data` field arrive as JSON of their fields). */
const labelsOf = (report: HandlerReport) =>
  report.records.map((r) => (JSON.parse(r.data) as { n: string }).n);

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const pendingCount = async (stream: string, group: string) =>
  ((await fixture.redis.xpending(stream, group)) as [number, ...unknown[]])[0];

test('a poison record blocks only its partition key: bisect isolates it, it is dead-lettered, then its key flows on, each key in order', async (t) => {
  const recorder = await recorderFor(t);
  await startFunction(
    'ordered',
    reportingHandler(`
      const poisoned = records.some((r) => JSON.parse(r.data).poison);
      await report({ failed: poisoned });
      if (poisoned) throw new Error('poison record');
      return null;`),
    recorder,
  );
  // Two keys in different lanes of two, so that they are processed side by side.
  const keyA = 'alpha';
  const keyB = ['beta', 'gamma', 'delta', 'epsilon'].find((key) => laneOf(key, 2) !== laneOf(keyA, 2))!;
  const stream = 'orders-poison';
  const ids = new Map<string, string>();
  const add = async (key: string, n: string, ...extra: string[]) =>
    ids.set(n, (await fixture.redis.xadd(stream, '*', 'partitionKey', key, 'n', n, ...extra))!);
  for (let i = 1; i <= 8; i++) {
    await add(keyA, `A${i}`, ...(i === 5 ? ['poison', 'yes'] : []));
    await add(keyB, `B${i}`);
  }
  const mapping = await runMapping(
    t,
    'ordered',
    {
      functionName: 'ordered',
      source: { redisStream: { stream } },
      startingPosition: 'TRIM_HORIZON',
      batchSize: 4,
      parallelizationFactor: 2,
      bisectBatchOnFunctionError: true,
      maximumRetryAttempts: 1,
      destinationConfig: { onFailure: { stream: 'orders-poison-failed' } },
    },
    // A's single retry of the poison record waits this long: B's new records must not.
    1500,
  );

  await recorder.waitFor(
    (reports) => reports.some((r) => r.failed && r.records.length === 1),
    15_000,
    'call with the poison record alone',
  );
  for (let i = 9; i <= 12; i++) await add(keyB, `B${i}`);
  const succeeded = (reports: HandlerReport[]) => reports.filter((r) => !r.failed).flatMap(labelsOf);
  await recorder.waitFor(
    (reports) => succeeded(reports).includes('A8') && succeeded(reports).includes('B12'),
    15_000,
    'all records processed',
  );

  const reports = recorder.reports;
  const okOf = (key: string) =>
    reports
      .filter((r) => !r.failed)
      .flatMap((r) => r.records.filter((x) => x.key === key).map((x) => JSON.parse(x.data).n));
  assert.deepEqual(okOf(keyA), ['A1', 'A2', 'A3', 'A4', 'A6', 'A7', 'A8']);
  assert.deepEqual(okOf(keyB), ['B1', 'B2', 'B3', 'B4', 'B5', 'B6', 'B7', 'B8', 'B9', 'B10', 'B11', 'B12']);
  // Bisect: the failing batch halves until the poison record is alone, which then uses its retry.
  const withPoison = reports.filter((r) => labelsOf(r).includes('A5'));
  assert.deepEqual(withPoison.map(labelsOf), [['A5', 'A6', 'A7', 'A8'], ['A5', 'A6'], ['A5'], ['A5']]);
  // B's late records went through while A waited for the poison record's retry.
  const b12At = reports.find((r) => labelsOf(r).includes('B12'))!.at;
  const lastPoisonAt = withPoison.at(-1)!.at;
  assert.ok(b12At < lastPoisonAt, `B12 at ${b12At} should come before A5's last try at ${lastPoisonAt}`);

  await until(async () => (await fixture.redis.xlen('orders-poison-failed')) > 0, 'the failure record');
  const entries = await fixture.redis.xrange('orders-poison-failed', '-', '+');
  assert.equal(entries.length, 1);
  const [, fields] = entries[0]!;
  assert.equal(fields[0], 'record');
  const failure = JSON.parse(fields[1]!);
  assert.equal(failure.requestContext.condition, 'RetryAttemptsExhausted');
  assert.equal(failure.requestContext.functionArn, 'arn:aws:lambda:us-east-1:000000000000:function:ordered');
  assert.equal(failure.requestContext.approximateInvokeCount, 4);
  assert.equal(failure.responseContext.statusCode, 200);
  assert.equal(failure.responseContext.executedVersion, '$LATEST');
  assert.equal(failure.responseContext.functionError, 'Error');
  assert.deepEqual(failure.KinesisBatchInfo, {
    shardId: 'shardId-000000000000',
    startSequenceNumber: ids.get('A5'),
    endSequenceNumber: ids.get('A5'),
    approximateArrivalOfFirstRecord: new Date(Number(ids.get('A5')!.split('-')[0])).toISOString(),
    approximateArrivalOfLastRecord: new Date(Number(ids.get('A5')!.split('-')[0])).toISOString(),
    batchSize: 1,
    streamArn: `arn:hearth:redis:::stream/${stream}`,
  });
  // The failure record was written before A's later records were sent.
  const a6At = reports.find((r) => !r.failed && labelsOf(r).includes('A6'))!.at;
  assert.ok(Date.parse(failure.timestamp) <= a6At);

  assert.equal(await mapping.count('failures'), 1);
  assert.equal(await mapping.count('recordsRead'), 20);
  assert.equal(await mapping.count('batches', 'error'), 4);
  await until(async () => (await pendingCount(stream, 'hearth-ordered')) === 0, 'every record acknowledged');
  await until(
    async () => mapping.status.lastProcessedPosition === ids.get('B12'),
    'the checkpoint at the last record',
  );
  assert.equal(mapping.status.state, 'Enabled');
  assert.equal(mapping.status.lastProcessingResult, 'OK');
  assert.match(mapping.status.lastError ?? '', /RetryAttemptsExhausted/);
});

test('ReportBatchItemFailures: a batch is sent again from its lowest failed record, the records before it are not', async (t) => {
  const recorder = await recorderFor(t);
  await startFunction(
    'partial',
    reportingHandler(
      `
      const fields = records.map((r) => JSON.parse(r.data));
      // Records marked failOnce fail the first time they are seen; "bogus" names a record not in the batch once.
      const failing = records.filter((r, i) => fields[i].failOnce && !seen.has(r.seq));
      const bogus = fields.some((f) => f.bogus) && !seen.has('bogus');
      for (const r of failing) seen.add(r.seq);
      if (bogus) seen.add('bogus');
      await report({ failed: failing.length > 0 || bogus });
      const batchItemFailures = failing.map((r) => ({ itemIdentifier: r.seq }));
      if (bogus) batchItemFailures.push({ itemIdentifier: '1-1' });
      return { batchItemFailures };`,
      'const seen = new Set();',
    ),
    recorder,
  );
  const stream = 'orders-partial';
  for (let n = 1; n <= 10; n++) {
    const extra = n === 3 || n === 4 ? ['failOnce', 'yes'] : n === 7 ? ['bogus', 'yes'] : [];
    await fixture.redis.xadd(stream, '*', 'n', String(n), ...extra);
  }
  const mapping = await runMapping(t, 'partial', {
    functionName: 'partial',
    source: { redisStream: { stream } },
    startingPosition: 'TRIM_HORIZON',
    batchSize: 5,
    functionResponseTypes: ['ReportBatchItemFailures'],
  });
  await recorder.waitFor((reports) => reports.length >= 4 && !reports.at(-1)!.failed, 15_000, 'four calls');
  // 3 and 4 failed: checkpoint before 3, so 1 and 2 are never sent again. An identifier that is
  // not in the batch fails the whole batch, as on Lambda.
  assert.deepEqual(recorder.reports.map(labelsOf), [
    ['1', '2', '3', '4', '5'],
    ['3', '4', '5'],
    ['6', '7', '8', '9', '10'],
    ['6', '7', '8', '9', '10'],
  ]);
  assert.equal(await mapping.count('batches', 'partial'), 1);
  assert.equal(await mapping.count('batches', 'error'), 1);
  assert.equal(await mapping.count('retries'), 2);
  assert.equal(await mapping.count('failures'), 0);
  await until(async () => (await pendingCount(stream, 'hearth-partial')) === 0, 'every record acknowledged');
  await sleep(200);
  assert.equal(recorder.reports.length, 4, 'nothing is sent after the last success');
});

test('starting positions: TRIM_HORIZON reads from the start, LATEST only what comes after, AT_TIMESTAMP from that time', async (t) => {
  const recorder = await recorderFor(t);
  await startFunction('positions', reportingHandler('await report(); return null;'), recorder);
  const positions = {
    'pos-trim': { startingPosition: 'TRIM_HORIZON' },
    'pos-latest': { startingPosition: 'LATEST' },
    'pos-timestamp': {
      startingPosition: 'AT_TIMESTAMP',
      startingPositionTimestamp: '1970-01-01T00:00:02.000Z',
    },
  };
  for (const stream of Object.keys(positions)) {
    // Entries with ids of our choosing: 1, 2 and 3 seconds after the epoch.
    await fixture.redis.xadd(stream, '1000-0', 'data', 'old-1');
    await fixture.redis.xadd(stream, '2000-0', 'data', 'old-2');
    await fixture.redis.xadd(stream, '3000-0', 'color', 'red');
  }
  for (const [stream, position] of Object.entries(positions)) {
    await runMapping(t, stream, {
      functionName: 'positions',
      source: { redisStream: { stream } },
      ...position,
    });
  }
  for (const stream of Object.keys(positions)) await fixture.redis.xadd(stream, '*', 'data', 'new');
  const dataOf = (stream: string) =>
    recorder.reports.flatMap((r) => r.records.filter((x) => x.key === stream).map((x) => x.data));
  await recorder.waitFor(
    () => Object.keys(positions).every((stream) => dataOf(stream).includes('new')),
    15_000,
    'the new entry on every stream',
  );
  // Without a partitionKey field the stream's name is the key; without a data field the fields are the data.
  assert.deepEqual(dataOf('pos-trim'), ['old-1', 'old-2', '{"color":"red"}', 'new']);
  assert.deepEqual(dataOf('pos-latest'), ['new']);
  assert.deepEqual(dataOf('pos-timestamp'), ['old-2', '{"color":"red"}', 'new']);
  const first = recorder.reports.flatMap((r) => r.records).find((x) => x.key === 'pos-trim')!;
  assert.equal(first.seq, '1000-0');
  assert.equal(first.arrival, 1);
});

test('maximumBatchingWindowInSeconds gathers records that trickle in; a full batch goes at once', async (t) => {
  const recorder = await recorderFor(t);
  await startFunction('windowed', reportingHandler('await report(); return null;'), recorder);
  const stream = 'orders-window';
  await runMapping(t, 'windowed', {
    functionName: 'windowed',
    source: { redisStream: { stream } },
    batchSize: 5,
    maximumBatchingWindowInSeconds: 1,
  });
  const firstId = await fixture.redis.xadd(stream, '*', 'n', '1');
  for (const n of ['2', '3']) {
    await sleep(100);
    await fixture.redis.xadd(stream, '*', 'n', n);
  }
  await recorder.waitFor((reports) => reports.length > 0, 10_000, 'the first batch');
  const waited = recorder.reports[0]!.at - Number(firstId!.split('-')[0]);
  assert.ok(waited >= 900 && waited < 5000, `the first batch went ${waited} ms after its first record`);

  const pipeline = fixture.redis.pipeline();
  for (let n = 4; n <= 8; n++) pipeline.xadd(stream, '*', 'n', String(n));
  const added = Date.now();
  await pipeline.exec();
  await recorder.waitFor((reports) => reports.length > 1, 10_000, 'the full batch');
  assert.ok(recorder.reports[1]!.at - added < 900, 'a full batch does not wait for the window');
  assert.deepEqual(recorder.reports.map(labelsOf), [
    ['1', '2', '3'],
    ['4', '5', '6', '7', '8'],
  ]);
});

test('failure records reach a URL and a function destination; a refused record is an error for the caller', async (t) => {
  const recorder = await recorderFor(t);
  await startFunction(
    'failure-sink',
    `export const handler = async (event) => {
      await fetch(process.env.RECORDER, { method: 'POST', body: JSON.stringify({ at: Date.now(), records: [], sink: event }) });
      return null;
    };`,
    recorder,
  );
  const invoker = new GatewayInvoker({ url: gateway.url, token: API_KEY });
  t.after(() => invoker.close());
  const send = createDestinationSender({ redis: fixture.redis, invoker });
  await send({ url: recorder.url }, { condition: 'RetryAttemptsExhausted', via: 'url' });
  await send({ function: 'failure-sink' }, { condition: 'RetryAttemptsExhausted', via: 'function' });
  await recorder.waitFor((reports) => reports.length === 2, 15_000, 'both records');
  assert.deepEqual(recorder.reports[0], { condition: 'RetryAttemptsExhausted', via: 'url' });
  assert.deepEqual(recorder.reports[1]!.sink, { condition: 'RetryAttemptsExhausted', via: 'function' });
  await assert.rejects(
    send({ function: 'no-such-function' }, {}),
    /no-such-function did not take the record/,
  );
  await assert.rejects(send({ url: `http://127.0.0.1:${await freePort()}/` }, {}));
});

test('lag is the age of the oldest entry not yet acknowledged: pending first, then the first not yet read', async () => {
  const stream = 'orders-lag';
  const now = Date.now();
  await fixture.redis.xadd(stream, `${now - 60_000}-0`, 'n', '1');
  await fixture.redis.xadd(stream, `${now - 30_000}-0`, 'n', '2');
  const source = await openRedisStreamSource({
    redisUrl: redis.url,
    stream,
    group: 'hearth-lag',
    consumer: 'controller-1',
    position: { startingPosition: 'TRIM_HORIZON' },
  });
  try {
    const near = (actual: number, expected: number) =>
      assert.ok(Math.abs(actual - expected) < 5000, `lag ${actual} ms, expected about ${expected} ms`);
    near(await source.lagMs(), 60_000);
    const [first] = await source.read(1, 100);
    near(await source.lagMs(), 60_000);
    await source.ack([first!]);
    near(await source.lagMs(), 30_000);
    const [second] = await source.read(1, 100);
    await source.ack([second!]);
    assert.equal(await source.lagMs(), 0);
    assert.deepEqual(await source.read(10, 50), []);
  } finally {
    await source.close();
  }
});

test("a reader takes over another consumer's entries once idle, at open and later, marked redelivered", async () => {
  const stream = 'orders-claim';
  const open = (consumer: string) =>
    openRedisStreamSource({
      redisUrl: redis.url,
      stream,
      group: 'hearth-claim',
      consumer,
      position: { startingPosition: 'TRIM_HORIZON' },
      claimIdleMs: 200,
    });
  for (const n of ['1', '2']) await fixture.redis.xadd(stream, '*', 'n', n);
  const dead = await open('dead-controller');
  const live = await (async () => {
    assert.equal((await dead.read(10, 100)).length, 2);
    await sleep(300);
    return open('live-controller');
  })();
  try {
    const taken = await live.read(10, 100);
    assert.deepEqual(
      taken.map((r) => [r.data.toString(), r.redelivered]),
      [
        ['{"n":"1"}', true],
        ['{"n":"2"}', true],
      ],
    );
    // The dead reader's later entry is taken over by the periodic sweep, after a new one comes first.
    await fixture.redis.xadd(stream, '*', 'n', '3');
    assert.equal((await dead.read(10, 100)).length, 1);
    await fixture.redis.xadd(stream, '*', 'n', '4');
    const next = await live.read(10, 100);
    assert.deepEqual(
      next.map((r) => [r.data.toString(), r.redelivered ?? false]),
      [['{"n":"4"}', false]],
    );
    await sleep(300);
    const later = await live.read(10, 100);
    assert.deepEqual(
      later.map((r) => [r.data.toString(), r.redelivered]),
      [['{"n":"3"}', true]],
    );
    await live.ack([...taken, ...next, ...later]);
    assert.equal(await pendingCount(stream, 'hearth-claim'), 0);
  } finally {
    await live.close();
    await dead.close();
  }
});
