import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { createServer, type Server } from 'node:http';
import { connect, headers, type JetStreamClient, type JetStreamManager, type NatsConnection } from 'nats';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { validateEventSourceMappingSpec, type EventSourceMappingStatus } from '@hearth/api';
import type { StartingPosition } from '@hearth/controller/event-sources/types';
import type { RecordSource, SourceRecord } from '@hearth/controller/event-sources/types';
import { openNatsSource, type NatsRecord } from '@hearth/controller/event-sources/nats-source';
import { runStreamMapping } from '@hearth/controller/event-sources/stream-runner';
import { laneOf, type StreamFailureRecord } from '@hearth/controller/event-sources/batching';
import { createDestinationSender } from '@hearth/controller/event-sources/destinations';
import { GatewayInvoker } from '@hearth/controller/event-sources/gateway-invoker';
import { EventSourceMetrics } from '@hearth/controller/event-sources/metrics';
import {
  startNatsServer,
  startProcess,
  startRedis,
  type NatsServer,
  type RedisServer,
} from '../harness/index.js';
import { API_KEY, GatewayFixture } from '../gateway/fixture.js';
import {
  reportingHandler,
  startRecorder as startReportRecorder,
  testMapping,
  type HandlerReport,
} from './stream-fixture.js';

const READER = fileURLToPath(new URL('./nats-reader.js', import.meta.url));

describe('the NATS JetStream source against a real nats-server', () => {
  let nats: NatsServer;
  let client: NatsConnection;
  let manager: JetStreamManager;
  let jetstream: JetStreamClient;
  let streams = 0;
  const opened: RecordSource[] = [];

  before(async () => {
    nats = await startNatsServer();
    client = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
    manager = await client.jetstreamManager();
    jetstream = client.jetstream();
  });
  after(async () => {
    for (const source of opened) await source.close().catch(() => undefined);
    await client?.close();
    await nats?.stop();
  });

  /**
   * The consumer's info once its acknowledgements are counted (or after 5 s): the server counts
   * them as its consumer takes them in, a moment after the flush that delivered them.
   */
  async function settledConsumer(name: string, consumer: string) {
    let info = await manager.consumers.info(name, consumer);
    for (let tries = 0; info.num_ack_pending > 0 && tries < 50; tries++) {
      await sleep(100);
      info = await manager.consumers.info(name, consumer);
    }
    return info;
  }

  /** A stream of its own for each test, on subjects `<name>.>`. */
  async function stream(): Promise<string> {
    const name = `s${++streams}`;
    await manager.streams.add({ name, subjects: [`${name}.>`] });
    return name;
  }
  async function publish(subject: string, data: string, partitionKey?: string): Promise<number> {
    const h = headers();
    if (partitionKey) h.set('Hearth-Partition-Key', partitionKey);
    return (await jetstream.publish(subject, data, { headers: partitionKey ? h : undefined })).seq;
  }
  async function open(
    name: string,
    consumer: string,
    position: StartingPosition = { startingPosition: 'TRIM_HORIZON' },
    extra: { subject?: string; ackWaitMs?: number } = {},
  ): Promise<RecordSource> {
    const source = await openNatsSource({
      source: { url: nats.url, stream: name, subject: extra.subject },
      consumer,
      position,
      ackWaitMs: extra.ackWaitMs,
    });
    opened.push(source);
    return source;
  }
  /** Reads until `count` records came, or fails naming what did. */
  async function readCount(source: RecordSource, count: number, max = 100, timeoutMs = 10_000) {
    const records: NatsRecord[] = [];
    const deadline = Date.now() + timeoutMs;
    while (records.length < count) {
      assert.ok(Date.now() < deadline, `only ${records.length} of ${count} records came: ${texts(records)}`);
      const batch = await source.read(Math.min(max, count - records.length), 500);
      assert.ok(batch.length <= max, `a read of at most ${max} gave ${batch.length}`);
      records.push(...(batch as NatsRecord[]));
    }
    return records;
  }
  const texts = (records: SourceRecord[]) => records.map((r) => r.data.toString());

  test('starting positions: TRIM_HORIZON from the first record, LATEST from the next one, AT_TIMESTAMP from that time', async () => {
    const name = await stream();
    await publish(`${name}.a`, 'one');
    await publish(`${name}.a`, 'two');
    await sleep(50);
    const between = new Date().toISOString();
    await sleep(50);
    const threeSeq = await publish(`${name}.b`, 'three', 'customer-7');
    const fromStart = await open(name, 'all');
    const fromTime = await open(name, 'by-time', {
      startingPosition: 'AT_TIMESTAMP',
      startingPositionTimestamp: between,
    });
    const fromNow = await open(name, 'new', { startingPosition: 'LATEST' });
    const publishedAt = Date.now();
    await publish(`${name}.a`, 'four');

    assert.deepEqual(texts(await readCount(fromStart, 4)), ['one', 'two', 'three', 'four']);
    const [three, four] = await readCount(fromTime, 2);
    assert.deepEqual(texts([three!, four!]), ['three', 'four']);
    assert.deepEqual(texts(await readCount(fromNow, 1)), ['four']);
    assert.deepEqual(await fromNow.read(10, 300), [], 'LATEST has nothing more');

    assert.equal(three!.sequence, String(threeSeq), 'the sequence is the stream sequence');
    assert.equal(three!.partitionKey, 'customer-7', 'the Hearth-Partition-Key header is the partition key');
    assert.equal(four!.partitionKey, `${name}.a`, 'without the header the subject is');
    assert.ok(Math.abs(four!.arrivedAt - publishedAt) < 2000, 'arrivedAt is when the stream stored it');
    assert.equal(four!.redelivered, false);
    assert.equal(fromStart.arn, `arn:hearth:nats:::stream/${name}`);
  });

  test('a stream that does not exist, or a server that does not answer, fails the open with a reason', async () => {
    await assert.rejects(open('nonexistent', 'c'), /JetStream stream nonexistent does not exist/);
    await assert.rejects(
      openNatsSource({
        source: { url: 'nats://127.0.0.1:1', stream: 'orders' },
        consumer: 'c',
        position: { startingPosition: 'LATEST' },
      }),
      /could not connect to NATS at nats:\/\/127\.0\.0\.1:1/,
    );
  });

  test('a filter subject reads only its subject, and a new one moves the consumer; the lag is the age of the oldest unacknowledged record', async () => {
    const name = await stream();
    const source = await open(
      name,
      'eu-only',
      { startingPosition: 'TRIM_HORIZON' },
      { subject: `${name}.eu` },
    );
    await publish(`${name}.eu`, 'eu-1');
    await publish(`${name}.us`, 'us-1');
    await publish(`${name}.eu`, 'eu-2');
    await sleep(300);
    const lag = await source.lagMs();
    assert.ok(lag >= 300 && lag < 5000, `lag ${lag} ms with two records waiting 300 ms`);
    const records = await readCount(source, 2);
    assert.deepEqual(texts(records), ['eu-1', 'eu-2']);
    assert.ok((await source.lagMs()) >= 300, 'records handed out but not acknowledged still count');
    await source.ack(records);
    assert.equal(await source.lagMs(), 0, 'caught up');
    assert.deepEqual(await source.read(10, 300), []);
    await source.close();

    // The mapping's subject changes: the consumer follows, from where it was.
    await publish(`${name}.us`, 'us-2');
    await publish(`${name}.eu`, 'eu-3');
    const moved = await open(
      name,
      'eu-only',
      { startingPosition: 'TRIM_HORIZON' },
      { subject: `${name}.us` },
    );
    assert.deepEqual(texts(await readCount(moved, 1)), ['us-2']);
    await moved.close();
    await assert.rejects(open(name, 'eu-only'), /reads only s\d+\.us and the mapping names no subject/);
  });

  test('reads come in stream order, at most max at a time; acknowledged records never come back', async () => {
    const name = await stream();
    for (let i = 1; i <= 25; i++) await publish(`${name}.k${i % 3}`, `r${i}`);
    const first = await open(name, 'ordered');
    const records = await readCount(first, 25, 10);
    assert.deepEqual(
      texts(records),
      Array.from({ length: 25 }, (_, i) => `r${i + 1}`),
    );
    const sequences = records.map((r) => Number(r.sequence));
    assert.deepEqual(
      sequences,
      [...sequences].sort((a, b) => a - b),
    );
    await first.ack(records);
    await first.close();

    await publish(`${name}.k0`, 'r26');
    const second = await open(name, 'ordered');
    assert.deepEqual(texts(await readCount(second, 1)), ['r26'], 'only the record published after');
    assert.deepEqual(await second.read(10, 300), []);
  });

  test('a reader closed without acknowledging: its records come back first, at once, before newer ones', async () => {
    const name = await stream();
    for (let i = 1; i <= 6; i++) await publish(`${name}.a`, `r${i}`);
    // A long ack_wait: the records must come back because close() gave them back, not because it ran out.
    const first = await open(name, 'handover', undefined, { ackWaitMs: 60_000 });
    const taken = await readCount(first, 3, 3);
    await first.ack([taken[0]!]);
    await first.close();
    await publish(`${name}.a`, 'r7');

    const started = Date.now();
    const second = await open(name, 'handover', undefined, { ackWaitMs: 60_000 });
    const records = await readCount(second, 6, 3);
    assert.deepEqual(texts(records), ['r2', 'r3', 'r4', 'r5', 'r6', 'r7']);
    assert.deepEqual(
      records.map((r) => r.redelivered),
      [true, true, false, false, false, false],
    );
    assert.ok(Date.now() - started < 5000, 'no wait for ack_wait');
  });

  test('a reader killed with SIGKILL mid-batch: its records come back after ack_wait, before newer ones', async () => {
    const name = await stream();
    for (let i = 1; i <= 5; i++) await publish(`${name}.a`, `r${i}`);
    const reader = await startProcess({
      name: 'nats-reader',
      command: process.execPath,
      args: [READER, nats.url, name, 'crashing', '3'],
    });
    const line = await reader.waitForLog(/\{"sequences".*\}/);
    assert.deepEqual(JSON.parse(line), { sequences: ['1', '2', '3'] });
    await reader.stop('SIGKILL');
    await publish(`${name}.a`, 'r6');

    const next = await open(name, 'crashing', undefined, { ackWaitMs: 1000 });
    assert.ok((await next.lagMs()) > 0, 'the dead reader’s records are lag');
    const records = await readCount(next, 6, 2);
    assert.deepEqual(texts(records), ['r1', 'r2', 'r3', 'r4', 'r5', 'r6']);
    assert.deepEqual(
      records.map((r) => r.redelivered),
      [true, true, true, false, false, false],
    );
    await next.ack(records);
    const info = await settledConsumer(name, 'crashing');
    assert.equal(info.num_ack_pending, 0);
    assert.equal(info.config.max_ack_pending, 20_000, 'max_ack_pending is back after recovery');
  });

  test('a restart of the NATS server: the source reconnects, reads on, and what it held is not handed out twice', async () => {
    const name = await stream();
    for (let i = 1; i <= 3; i++) await publish(`${name}.a`, `r${i}`);
    const source = await open(name, 'survivor', undefined, { ackWaitMs: 1000 });
    const held = await readCount(source, 3);
    await nats.restart();
    // A request sent while the test's own client reconnects can go unanswered: wait for it first.
    for (let answered = false; !answered;) {
      answered = await client.request('$JS.API.INFO', '', { timeout: 500 }).then(
        () => true,
        () => false,
      );
    }
    for (let i = 4; i <= 5; i++) await publish(`${name}.a`, `r${i}`);
    const after = await readCount(source, 2, 100, 20_000);
    assert.deepEqual(texts(after), ['r4', 'r5']);
    await sleep(1500); // past ack_wait: held records would come back now if the server had lost track
    assert.deepEqual(texts(await source.read(10, 300)), []);
    await source.ack([...held, ...after]);
    assert.equal((await settledConsumer(name, 'survivor')).num_ack_pending, 0);
  });

  test('records held longer than ack_wait are not handed out again, to this reader or another', async () => {
    const name = await stream();
    for (let i = 1; i <= 5; i++) await publish(`${name}.a`, `r${i}`);
    const holder = await open(name, 'slow', undefined, { ackWaitMs: 500 });
    const held = await readCount(holder, 3, 3);
    // A second reader of the same durable (an old controller not yet gone) gets none of them in
    // four times ack_wait, and nothing newer either: it waits for them to come back first.
    const other = await open(name, 'slow', undefined, { ackWaitMs: 500 });
    assert.deepEqual(texts(await other.read(10, 2000)), []);
    // Past three times ack_wait it knows they are a live reader's, and reads on beside it.
    const rest = await readCount(other, 2);
    assert.deepEqual(texts(rest), ['r4', 'r5']);
    assert.deepEqual(await holder.read(10, 300), [], 'no redelivery of r1..r3');
    await Promise.all([holder.ack(held), other.ack(rest)]);
    const info = await settledConsumer(name, 'slow');
    assert.equal(info.num_ack_pending, 0);
    assert.equal(info.config.max_ack_pending, 20_000, 'max_ack_pending is back');
  });
});

/** Reports every batch it is given to the test's recorder, and fails any batch holding "poison". */
const CONSUMER = `
export const handler = async (event) => {
  const records = event.Records.map((r) => ({
    sequence: r.kinesis.sequenceNumber,
    key: r.kinesis.partitionKey,
    data: Buffer.from(r.kinesis.data, 'base64').toString(),
    source: r.eventSourceARN,
  }));
  const failed = records.some((r) => r.data === 'poison');
  await fetch(process.env.RECORDER_URL + '/batch', { method: 'POST', body: JSON.stringify({ records, failed }) });
  if (failed) throw new Error('poison record');
  return {};
};
`;

interface SeenBatch {
  records: { sequence: string; key: string; data: string; source: string }[];
  failed: boolean;
  at: number;
}

/** The HTTP server the handler reports to, and the on-failure destination. */
async function startRecorder() {
  const batches: SeenBatch[] = [];
  const failures: { record: StreamFailureRecord; at: number }[] = [];
  const server: Server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      const at = Date.now();
      if (request.url === '/batch') batches.push({ ...(JSON.parse(body) as Omit<SeenBatch, 'at'>), at });
      else failures.push({ record: JSON.parse(body) as StreamFailureRecord, at });
      response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, batches, failures, close: () => server.close() };
}

describe('a NATS JetStream mapping end to end: source, stream runner, gateway, runtime', () => {
  let nats: NatsServer;
  let redis: RedisServer;
  let fixture: GatewayFixture;
  let recorder: Awaited<ReturnType<typeof startRecorder>>;
  let gatewayUrl: string;

  before(async () => {
    recorder = await startRecorder();
    [nats, redis] = await Promise.all([startNatsServer(), startRedis()]);
    fixture = new GatewayFixture(redis.url);
    const route = await fixture.addFunction({
      name: 'consumer',
      source: CONSUMER,
      spec: { env: [{ name: 'RECORDER_URL', value: recorder.url }] },
    });
    const [gateway] = await Promise.all([fixture.startGateway(), fixture.addInstance(route)]);
    gatewayUrl = gateway.url;
  });
  after(async () => {
    await fixture?.stop();
    await redis?.stop();
    await nats?.stop();
    recorder?.close();
  });

  test('a poison record blocks only its subject; bisect isolates it, it goes to the on-failure destination, the rest flows in order', async () => {
    const client = await connect({ servers: nats.url });
    const manager = await client.jetstreamManager();
    const jetstream = client.jetstream();
    await manager.streams.add({ name: 'orders', subjects: ['orders.>'] });
    // Two subjects in different lanes (parallelizationFactor 2), so one can flow while the other is blocked.
    const subjects = ['eu', 'us', 'ap', 'sa', 'af'].map((region) => `orders.${region}`);
    const blocked = subjects[0]!;
    const free = subjects.find((subject) => laneOf(subject, 2) !== laneOf(blocked, 2))!;
    const published: Record<string, { sequence: string; data: string }[]> = { [blocked]: [], [free]: [] };
    for (let i = 1; i <= 8; i++) {
      for (const subject of [blocked, free]) {
        const data = subject === blocked && i === 5 ? 'poison' : `${subject.slice(7)}-${i}`;
        const ack = await jetstream.publish(subject, data);
        published[subject]!.push({ sequence: String(ack.seq), data });
      }
    }
    await client.close();

    const result = validateEventSourceMappingSpec({
      functionName: 'consumer',
      source: { nats: { url: nats.url, stream: 'orders' } },
      startingPosition: 'TRIM_HORIZON',
      batchSize: 4,
      parallelizationFactor: 2,
      bisectBatchOnFunctionError: true,
      maximumRetryAttempts: 2,
      destinationConfig: { onFailure: { url: `${recorder.url}/failure` } },
    });
    assert.ok(result.spec, JSON.stringify(result.problems));
    const status: EventSourceMappingStatus = {};
    const invoker = new GatewayInvoker({ url: gatewayUrl, token: API_KEY });
    const source = await openNatsSource({
      source: result.spec.source.nats!,
      consumer: 'hearth-orders',
      position: result.spec,
    });
    const runner = runStreamMapping(
      {
        id: 'default/orders',
        name: 'orders',
        namespace: 'default',
        uid: 'orders-uid',
        spec: result.spec,
        invoker,
        redisUrl: redis.url,
        sendToDestination: createDestinationSender({ redis: fixture.redis, invoker }),
        metrics: new EventSourceMetrics(new Registry()),
        logger: pino({ level: process.env.HEARTH_TEST_LOGS === '1' ? 'debug' : 'silent' }),
        region: 'us-east-1',
        accountId: '000000000000',
        reportStatus: (patch) => Object.assign(status, patch),
      },
      source,
      // Backoffs long enough that the blocked subject is visibly blocked while the other flows.
      { retryBaseDelayMs: 300, retryMaxDelayMs: 600 },
    );
    const succeeded = (subject: string) =>
      recorder.batches
        .filter((b) => !b.failed)
        .flatMap((b) => b.records)
        .filter((r) => r.key === subject);
    try {
      const deadline = Date.now() + 30_000;
      while (succeeded(blocked).length < 7 || succeeded(free).length < 8 || recorder.failures.length < 1) {
        assert.ok(Date.now() < deadline, `not done in 30 s: ${JSON.stringify(recorder.batches)}`);
        await sleep(50);
      }
      await sleep(300); // anything extra (a duplicate, a second failure record) shows up by now
    } finally {
      await runner.stop();
      await invoker.close();
    }

    const poison = published[blocked]![4]!;
    assert.equal(recorder.failures.length, 1, 'one failure record');
    const [{ record: failure, at: gaveUpAt }] = recorder.failures as [
      { record: StreamFailureRecord; at: number },
    ];
    assert.equal(failure.requestContext.condition, 'RetryAttemptsExhausted');
    assert.deepEqual(
      [
        failure.KinesisBatchInfo.startSequenceNumber,
        failure.KinesisBatchInfo.endSequenceNumber,
        failure.KinesisBatchInfo.batchSize,
      ],
      [poison.sequence, poison.sequence, 1],
      'bisect isolated the poison record',
    );
    assert.equal(failure.KinesisBatchInfo.streamArn, 'arn:hearth:nats:::stream/orders');
    assert.ok(
      failure.requestContext.approximateInvokeCount >= 3,
      'its own first call and two retries at least',
    );

    assert.deepEqual(
      succeeded(blocked).map((r) => r.data),
      published[blocked]!.filter((r) => r !== poison).map((r) => r.data),
      'the blocked subject: everything but the poison, once each, in order',
    );
    assert.deepEqual(
      succeeded(free).map((r) => r.data),
      published[free]!.map((r) => r.data),
      'the other subject: everything, once each, in order',
    );
    const afterPoison = new Set(published[blocked]!.slice(5).map((r) => r.sequence));
    for (const batch of recorder.batches.filter((b) => b.records.some((r) => afterPoison.has(r.sequence)))) {
      if (!batch.failed)
        assert.ok(batch.at >= gaveUpAt, 'no record after the poison succeeded before it was given up');
    }
    const freeDone = Math.max(
      ...recorder.batches.filter((b) => b.records.some((r) => r.key === free)).map((b) => b.at),
    );
    assert.ok(freeDone < gaveUpAt, 'the other subject finished while the poison was still being retried');
    assert.equal(recorder.batches[0]!.records[0]!.source, 'arn:hearth:nats:::stream/orders');

    const check = await connect({ servers: nats.url });
    const info = await (await check.jetstreamManager()).consumers.info('orders', 'hearth-orders');
    await check.close();
    assert.equal(info.num_ack_pending, 0, 'everything acknowledged');
    assert.equal(info.num_pending, 0);
    assert.equal(status.lastProcessedPosition, '16', 'checkpoint at the last record');
  });

  /**
   * Publishes `records` (each a JSON object) on `<stream>.in` of a new stream, starts `handler` as
   * a function reporting to a recorder of its own, and runs a mapping with `spec` over the stream
   * until the test ends.
   */
  async function runNatsMapping(
    t: TestContext,
    name: string,
    handler: string,
    spec: Record<string, unknown>,
    records: Record<string, unknown>[] = [],
  ) {
    const reports = await startReportRecorder();
    t.after(() => reports.close());
    const route = await fixture.addFunction({
      name,
      source: handler,
      spec: { env: [{ name: 'RECORDER', value: reports.url }] },
    });
    await fixture.addInstance(route);
    const client = await connect({ servers: nats.url });
    t.after(() => client.close());
    await (await client.jetstreamManager()).streams.add({ name, subjects: [`${name}.>`] });
    const jetstream = client.jetstream();
    const publish = async (record: Record<string, unknown>) =>
      String((await jetstream.publish(`${name}.in`, JSON.stringify(record))).seq);
    const sequences: string[] = [];
    for (const record of records) sequences.push(await publish(record));
    const mapping = testMapping({
      name,
      spec: {
        functionName: name,
        source: { nats: { url: nats.url, stream: name } },
        startingPosition: 'TRIM_HORIZON',
        ...spec,
      },
      gatewayUrl,
      token: API_KEY,
      redisUrl: redis.url,
      redis: fixture.redis,
    });
    const source = await openNatsSource({
      source: mapping.spec.source.nats!,
      consumer: `hearth-${name}`,
      position: mapping.spec,
    });
    const runner = runStreamMapping(mapping.ctx, source, { retryBaseDelayMs: 50, retryMaxDelayMs: 50 });
    t.after(async () => {
      await runner.stop();
      await mapping.close();
    });
    const ackPending = async () =>
      (await (await client.jetstreamManager()).consumers.info(name, `hearth-${name}`)).num_ack_pending;
    return { reports, mapping, sequences, publish, ackPending };
  }

  const numbersOf = (report: HandlerReport) =>
    report.records.map((r) => (JSON.parse(r.data) as { n: number }).n);

  test('ReportBatchItemFailures: a batch is sent again from its lowest failed record, the records before it are not', async (t) => {
    const records = Array.from({ length: 10 }, (_, i) => ({
      n: i + 1,
      // 3 and 4 fail the first time they are seen; 7 names a record not in its batch, once.
      ...(i + 1 === 3 || i + 1 === 4 ? { failOnce: true } : {}),
      ...(i + 1 === 7 ? { bogus: true } : {}),
    }));
    const { reports, mapping, sequences, ackPending } = await runNatsMapping(
      t,
      'partial',
      reportingHandler(
        `
        const fields = records.map((r) => JSON.parse(r.data));
        const failing = records.filter((r, i) => fields[i].failOnce && !seen.has(r.seq));
        const bogus = fields.some((f) => f.bogus) && !seen.has('bogus');
        for (const r of failing) seen.add(r.seq);
        if (bogus) seen.add('bogus');
        await report({ failed: failing.length > 0 || bogus });
        const batchItemFailures = failing.map((r) => ({ itemIdentifier: r.seq }));
        if (bogus) batchItemFailures.push({ itemIdentifier: '999999' });
        return { batchItemFailures };`,
        'const seen = new Set();',
      ),
      // A full batch goes at once; without a window a batch goes with what the pull has brought so
      // far, which on a loaded machine was 2 of the 10 records published before the start.
      { batchSize: 5, maximumBatchingWindowInSeconds: 1, functionResponseTypes: ['ReportBatchItemFailures'] },
      records,
    );
    await reports.waitFor((all) => all.length >= 4 && !all.at(-1)!.failed, 15_000, 'four calls');
    // 3 and 4 failed: the records before 3 are finished and never sent again. An identifier that
    // is not in the batch fails the whole batch, as on Lambda.
    assert.deepEqual(reports.reports.map(numbersOf), [
      [1, 2, 3, 4, 5],
      [3, 4, 5],
      [6, 7, 8, 9, 10],
      [6, 7, 8, 9, 10],
    ]);
    assert.deepEqual(
      reports.reports[1]!.records.map((r) => r.seq),
      sequences.slice(2, 5),
      'the itemIdentifiers are the JetStream sequences',
    );
    assert.equal(await mapping.count('batches', 'partial'), 1);
    assert.equal(await mapping.count('batches', 'error'), 1);
    assert.equal(await mapping.count('retries'), 2);
    assert.equal(await mapping.count('failures'), 0);
    const deadline = Date.now() + 10_000;
    while ((await ackPending()) > 0) {
      assert.ok(Date.now() < deadline, 'every record acknowledged');
      await sleep(50);
    }
    await sleep(300);
    assert.equal(reports.reports.length, 4, 'nothing is sent after the last success');
  });

  test('maximumBatchingWindowInSeconds gathers records that trickle in; a full batch goes at once', async (t) => {
    const { reports, publish } = await runNatsMapping(
      t,
      'windowed',
      reportingHandler('await report(); return null;'),
      {
        batchSize: 5,
        maximumBatchingWindowInSeconds: 1,
      },
    );
    const firstAt = Date.now();
    await publish({ n: 1 });
    for (const n of [2, 3]) {
      await sleep(100);
      await publish({ n });
    }
    await reports.waitFor((all) => all.length > 0, 10_000, 'the first batch');
    const waited = reports.reports[0]!.at - firstAt;
    assert.ok(waited >= 900 && waited < 5000, `the first batch went ${waited} ms after its first record`);

    const added = Date.now();
    await Promise.all([4, 5, 6, 7, 8].map((n) => publish({ n })));
    await reports.waitFor((all) => all.length > 1, 10_000, 'the full batch');
    assert.ok(reports.reports[1]!.at - added < 900, 'a full batch does not wait for the window');
    assert.deepEqual(
      reports.reports.map((r) => numbersOf(r).sort((a, b) => a - b)),
      [
        [1, 2, 3],
        [4, 5, 6, 7, 8],
      ],
    );
  });
});
