import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, headers, type JetStreamClient, type JetStreamManager, type NatsConnection } from 'nats';
import type { StartingPosition } from '@hearth/controller/event-sources/types';
import type { RecordSource, SourceRecord } from '@hearth/controller/event-sources/types';
import { openNatsSource, type NatsRecord } from '@hearth/controller/event-sources/nats-source';
import { startNatsServer, startProcess, type NatsServer } from '../harness/index.js';

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
    client = await connect({ servers: nats.url });
    manager = await client.jetstreamManager();
    jetstream = client.jetstream();
  });
  after(async () => {
    for (const source of opened) await source.close().catch(() => undefined);
    await client?.close();
    await nats?.stop();
  });

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

  test('a filter subject reads only its subject; the lag is the age of the oldest unacknowledged record', async () => {
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
    const info = await manager.consumers.info(name, 'crashing');
    assert.equal(info.num_ack_pending, 0);
    assert.equal(info.config.max_ack_pending, 20_000, 'max_ack_pending is back after recovery');
  });

  test('records held longer than ack_wait are not handed out again, to this reader or another', async () => {
    const name = await stream();
    for (let i = 1; i <= 5; i++) await publish(`${name}.a`, `r${i}`);
    const holder = await open(name, 'slow', undefined, { ackWaitMs: 500 });
    const held = await readCount(holder, 3, 3);
    // A second reader of the same durable (an old controller not yet gone) gets nothing of them
    // in four times ack_wait, and no newer record either while they are out.
    const other = await open(name, 'slow', undefined, { ackWaitMs: 500 });
    assert.deepEqual(texts(await other.read(10, 2000)), []);
    await other.close();
    assert.deepEqual(texts(await readCount(holder, 2)), ['r4', 'r5']);
    assert.deepEqual(await holder.read(10, 300), [], 'no redelivery of r1..r3');
    await holder.ack(held);
  });
});
