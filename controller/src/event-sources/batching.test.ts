import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  afterInvoke,
  backoffMs,
  batchLength,
  expireRecords,
  interpretOutcome,
  kinesisEvent,
  laneOf,
  newBatch,
  ReadOrder,
  streamFailureRecord,
  type KinesisRecord,
  type PendingBatch,
  type RetryPolicy,
} from './batching.js';
import type { SourceRecord } from './types.js';

const record = (sequence: string, data = `record ${sequence}`, partitionKey = 'orders'): SourceRecord => ({
  sequence,
  partitionKey,
  data: Buffer.from(data),
  arrivedAt: Number(sequence.split('-')[0]),
});
const records = (count: number) => Array.from({ length: count }, (_, i) => record(`${1000 + i}-0`));
const sequences = (list: readonly SourceRecord[]) => list.map((r) => r.sequence);

const policy = (overrides: Partial<RetryPolicy> = {}): RetryPolicy => ({
  maximumRetryAttempts: -1,
  bisectBatchOnFunctionError: false,
  retryBaseDelayMs: 100,
  retryMaxDelayMs: 1000,
  ...overrides,
});
const success = (payload = 'null') => ({ kind: 'success' as const, payload });
const functionError = {
  kind: 'functionError' as const,
  errorType: 'Error',
  payload: '{"errorType":"Error"}',
};

test('a batch becomes a Kinesis event handlers written for Kinesis can read', () => {
  const json = kinesisEvent([record('1700000000123-4', 'hello', 'user-7')], {
    sourceArn: 'arn:hearth:redis:::stream/orders',
    region: 'eu-west-1',
    accountId: '123456789012',
  });
  const event = JSON.parse(json) as { Records: KinesisRecord[] };
  assert.equal(event.Records.length, 1);
  assert.deepEqual(event.Records[0], {
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey: 'user-7',
      sequenceNumber: '1700000000123-4',
      data: Buffer.from('hello').toString('base64'),
      approximateArrivalTimestamp: 1700000000.123,
    },
    eventSource: 'aws:kinesis',
    eventVersion: '1.0',
    eventID: 'shardId-000000000000:1700000000123-4',
    eventName: 'aws:kinesis:record',
    invokeIdentityArn: 'arn:aws:iam::123456789012:role/hearth-function',
    awsRegion: 'eu-west-1',
    eventSourceARN: 'arn:hearth:redis:::stream/orders',
  });
  // The fields in Kinesis's order, as an object serialized by JSON.stringify would have them.
  assert.equal(json, JSON.stringify(event));
  assert.deepEqual(Object.keys(event.Records[0]!), [
    'kinesis',
    'eventSource',
    'eventVersion',
    'eventID',
    'eventName',
    'invokeIdentityArn',
    'awsRegion',
    'eventSourceARN',
  ]);
});

test('the Kinesis event escapes what needs escaping in keys and names', () => {
  const partitionKey = 'a "quoted"\\ key\n\u2028é';
  const json = kinesisEvent([record('1-0', 'x', partitionKey), record('2-"0"', '', 'k')], {
    sourceArn: 'arn:hearth:redis:::stream/"odd"',
    region: 'eu-west-1',
    accountId: '123456789012',
  });
  const event = JSON.parse(json) as { Records: KinesisRecord[] };
  assert.equal(event.Records.length, 2);
  assert.equal(event.Records[0]!.kinesis.partitionKey, partitionKey);
  assert.equal(event.Records[0]!.eventSourceARN, 'arn:hearth:redis:::stream/"odd"');
  assert.equal(event.Records[1]!.kinesis.data, '');
  assert.equal(event.Records[1]!.kinesis.sequenceNumber, '2-"0"');
  assert.equal(event.Records[1]!.eventID, 'shardId-000000000000:2-"0"');
  assert.equal(kinesisEvent([], { sourceArn: 'a', region: 'r', accountId: '1' }), '{"Records":[]}');
});

test('a partition key always lands in the same lane, and keys spread over all lanes', () => {
  assert.equal(laneOf('user-1', 4), laneOf('user-1', 4));
  assert.equal(laneOf('anything', 1), 0);
  const used = new Set(Array.from({ length: 200 }, (_, i) => laneOf(`user-${i}`, 10)));
  assert.deepEqual(
    [...used].sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
});

test('a batch holds up to batchSize records and stays under the request size, one record at least', () => {
  assert.equal(batchLength(records(10), 4), 4);
  assert.equal(batchLength(records(3), 100), 3);
  const big = Array.from({ length: 5 }, (_, i) => record(`${i}-0`, 'x'.repeat(3000)));
  // Each record is 4000 bytes of base64 plus its overhead: two fit in 10,000 bytes, three do not.
  assert.equal(batchLength(big, 100, 10_000), 2);
  assert.equal(batchLength([record('1-0', 'x'.repeat(30_000))], 100, 10_000), 1);
});

test('without ReportBatchItemFailures any answer is success, whatever it says', () => {
  const batch = records(3);
  assert.deepEqual(
    interpretOutcome(success('{"batchItemFailures":[{"itemIdentifier":"1001-0"}]}'), batch, false),
    {
      kind: 'success',
    },
  );
});

test('a partial failure checkpoints before the lowest failed record, as Lambda does', () => {
  const batch = records(5);
  const answer = JSON.stringify({
    batchItemFailures: [{ itemIdentifier: '1003-0' }, { itemIdentifier: '1001-0' }],
  });
  assert.deepEqual(interpretOutcome(success(answer), batch, true), { kind: 'partial', failedFrom: 1 });
});

test('empty, null or absent failure lists mean complete success', () => {
  const batch = records(2);
  for (const payload of ['', 'null', '{}', '{"batchItemFailures":[]}', '{"batchItemFailures":null}']) {
    assert.deepEqual(interpretOutcome(success(payload), batch, true), { kind: 'success' }, payload);
  }
});

test('a malformed failure list or an unknown item makes the whole batch fail', () => {
  const batch = records(2);
  for (const payload of [
    'not json',
    '"done"',
    '[1]',
    '{"batchItemFailures":"1000-0"}',
    '{"batchItemFailures":[{"itemIdentifier":""}]}',
    '{"batchItemFailures":[{"itemIdentifier":null}]}',
    '{"batchItemFailures":[{"sequenceNumber":"1000-0"}]}',
    '{"batchItemFailures":[{"itemIdentifier":"999-0"}]}',
  ]) {
    assert.equal(interpretOutcome(success(payload), batch, true).kind, 'functionError', payload);
  }
});

test('throttles and an unreachable gateway stall the batch; function errors fail it', () => {
  const batch = records(1);
  assert.deepEqual(interpretOutcome({ kind: 'throttled', retryAfterMs: 2000 }, batch, true), {
    kind: 'stalled',
    reason: 'the function was throttled',
    retryAfterMs: 2000,
  });
  assert.equal(interpretOutcome({ kind: 'unavailable', message: 'down' }, batch, true).kind, 'stalled');
  assert.equal(interpretOutcome(functionError, batch, true).kind, 'functionError');
});

test('after a partial failure the failed record and those after it are sent again, as a retry', () => {
  const batch = newBatch(records(5));
  const step = afterInvoke(batch, { kind: 'partial', failedFrom: 2 }, policy());
  assert.deepEqual(sequences(step.succeeded), ['1000-0', '1001-0']);
  assert.equal(step.next.length, 1);
  assert.deepEqual(sequences(step.next[0]!.records), ['1002-0', '1003-0', '1004-0']);
  assert.equal(step.next[0]!.retries, 1);
  assert.equal(step.delayMs, 100);
});

test('a partial failure with no retries left gives up the rest and checkpoints the records before it', () => {
  const batch: PendingBatch = { ...newBatch(records(4)), retries: 2 };
  const step = afterInvoke(batch, { kind: 'partial', failedFrom: 1 }, policy({ maximumRetryAttempts: 2 }));
  assert.deepEqual(sequences(step.succeeded), ['1000-0']);
  assert.equal(step.givenUp?.condition, 'RetryAttemptsExhausted');
  assert.deepEqual(sequences(step.givenUp!.batch.records), ['1001-0', '1002-0', '1003-0']);
  assert.deepEqual(step.next, []);
});

test('a function error is retried with growing delays until maximumRetryAttempts retries are used', () => {
  const rules = policy({ maximumRetryAttempts: 2 });
  let batch = newBatch(records(3));
  const delays: number[] = [];
  for (;;) {
    const step = afterInvoke(
      { ...batch, invokes: batch.invokes + 1 },
      { kind: 'functionError', reason: 'boom' },
      rules,
    );
    if (step.givenUp) {
      assert.equal(step.givenUp.condition, 'RetryAttemptsExhausted');
      assert.equal(step.givenUp.batch.records.length, 3);
      // The first call and two retries.
      assert.equal(step.givenUp.batch.invokes, 3);
      break;
    }
    delays.push(step.delayMs);
    batch = step.next[0]!;
  }
  assert.deepEqual(delays, [100, 200]);
});

test('with maximumRetryAttempts -1 a failing batch is retried forever, the delay capped', () => {
  const step = afterInvoke(
    { ...newBatch(records(1)), retries: 5000 },
    { kind: 'functionError', reason: 'boom' },
    policy(),
  );
  assert.equal(step.givenUp, undefined);
  assert.equal(step.delayMs, 1000);
});

test('throttles use no retry and wait at least Retry-After', () => {
  const rules = policy({ maximumRetryAttempts: 0 });
  const step = afterInvoke(
    newBatch(records(2)),
    { kind: 'stalled', reason: 'throttled', retryAfterMs: 700 },
    rules,
  );
  assert.equal(step.givenUp, undefined);
  assert.equal(step.next[0]!.retries, 0);
  assert.equal(step.next[0]!.stalls, 1);
  assert.equal(step.delayMs, 700);
  assert.equal(backoffMs(4, rules), 800);
});

test('bisect isolates a poison record: the halves use no retries, the record alone uses them up', () => {
  // A function that fails any batch holding record 1005-0; the others succeed.
  const rules = policy({ maximumRetryAttempts: 1, bisectBatchOnFunctionError: true });
  const work = [newBatch(records(8))];
  const sent: string[][] = [];
  const succeeded: string[] = [];
  const givenUp: PendingBatch[] = [];
  while (work.length > 0) {
    const batch = work.shift()!;
    sent.push(sequences(batch.records));
    const poisoned = batch.records.some((r) => r.sequence === '1005-0');
    const step = afterInvoke(
      { ...batch, invokes: batch.invokes + 1 },
      poisoned ? { kind: 'functionError', reason: 'poison' } : { kind: 'success' },
      rules,
    );
    succeeded.push(...sequences(step.succeeded));
    if (step.givenUp) givenUp.push(step.givenUp.batch);
    work.unshift(...step.next);
  }
  assert.deepEqual(succeeded, ['1000-0', '1001-0', '1002-0', '1003-0', '1004-0', '1006-0', '1007-0']);
  assert.equal(givenUp.length, 1);
  assert.deepEqual(sequences(givenUp[0]!.records), ['1005-0']);
  // 8 -> 4+4 -> 2+2 -> 1+1: three calls carrying the poison record bisect, then it fails once
  // alone and once more on its single retry.
  assert.equal(givenUp[0]!.invokes, 5);
  assert.deepEqual(sent, [
    ['1000-0', '1001-0', '1002-0', '1003-0', '1004-0', '1005-0', '1006-0', '1007-0'],
    ['1000-0', '1001-0', '1002-0', '1003-0'],
    ['1004-0', '1005-0', '1006-0', '1007-0'],
    ['1004-0', '1005-0'],
    ['1004-0'],
    ['1005-0'],
    ['1005-0'],
    ['1006-0', '1007-0'],
  ]);
});

test('records past maximumRecordAgeInSeconds are split off before a send', () => {
  const batch = newBatch([record('1000-0'), record('5000-0'), record('9000-0')]);
  assert.deepEqual(expireRecords(batch, -1, 1_000_000), { fresh: batch });
  const { expired, fresh } = expireRecords(batch, 60, 65_000);
  assert.deepEqual(sequences(expired!.records), ['1000-0']);
  assert.deepEqual(sequences(fresh!.records), ['5000-0', '9000-0']);
  assert.equal(expireRecords(batch, 60, 100_000).fresh, undefined);
});

test("the on-failure record is Lambda's, with the batch's range and arrival times", () => {
  const batch: PendingBatch = {
    ...newBatch([record('1700000000000-0'), record('1700000001500-2')]),
    invokes: 3,
    lastResponse: { statusCode: 200, functionError: 'Unhandled' },
  };
  assert.deepEqual(
    streamFailureRecord({
      batch,
      condition: 'RetryAttemptsExhausted',
      functionArn: 'arn:aws:lambda:us-east-1:000000000000:function:consume',
      streamArn: 'arn:hearth:redis:::stream/orders',
      requestId: 'r-1',
      now: Date.UTC(2024, 0, 1),
    }),
    {
      requestContext: {
        requestId: 'r-1',
        functionArn: 'arn:aws:lambda:us-east-1:000000000000:function:consume',
        condition: 'RetryAttemptsExhausted',
        approximateInvokeCount: 3,
      },
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      version: '1.0',
      timestamp: '2024-01-01T00:00:00.000Z',
      KinesisBatchInfo: {
        shardId: 'shardId-000000000000',
        startSequenceNumber: '1700000000000-0',
        endSequenceNumber: '1700000001500-2',
        approximateArrivalOfFirstRecord: '2023-11-14T22:13:20.000Z',
        approximateArrivalOfLastRecord: '2023-11-14T22:13:21.500Z',
        batchSize: 2,
        streamArn: 'arn:hearth:redis:::stream/orders',
      },
    },
  );
});

test('the checkpoint is the last record before which everything is finished', () => {
  const order = new ReadOrder();
  for (const sequence of ['1-0', '2-0', '3-0', '4-0']) order.add(sequence);
  assert.equal(order.checkpoint(), undefined);
  order.finish('2-0');
  order.finish('4-0');
  assert.equal(order.checkpoint(), undefined);
  order.finish('1-0');
  assert.equal(order.checkpoint(), '2-0');
  order.finish('3-0');
  assert.equal(order.checkpoint(), '4-0');
});
