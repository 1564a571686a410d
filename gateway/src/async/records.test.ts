import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  deadLetterFields,
  failureRecord,
  parseDeadLetter,
  successRecord,
  type AsyncEvent,
} from './records.js';
import { destinationRequestId } from './destinations.js';

const arn = { region: 'eu-west-1', account: '123456789012' };
const at = new Date('2026-01-02T03:04:05.000Z');
const event: AsyncEvent = {
  functionName: 'orders',
  requestId: 'c0ffee00-1111-2222-3333-444455556666',
  payload: '{"order":7}',
  acceptedAt: Date.parse('2026-01-02T03:00:00.000Z'),
  functionErrors: 0,
  requeues: 0,
  invocations: 1,
};

test("a success record has Lambda's shape, with the parsed request and response", () => {
  assert.deepEqual(successRecord(event, { payload: '{"ok":true}', executedVersion: '$LATEST' }, at, arn), {
    version: '1.0',
    timestamp: '2026-01-02T03:04:05.000Z',
    requestContext: {
      requestId: event.requestId,
      functionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:orders:$LATEST',
      condition: 'Success',
      approximateInvokeCount: 1,
    },
    requestPayload: { order: 7 },
    responseContext: { statusCode: 200, executedVersion: '$LATEST' },
    responsePayload: { ok: true },
  });
});

test('a failure record after function errors carries functionError Unhandled and the error body', () => {
  const failed: AsyncEvent = {
    ...event,
    functionErrors: 3,
    invocations: 3,
    lastError: {
      type: 'Error',
      message: 'boom',
      functionErrorBody: '{"errorType":"Error","errorMessage":"boom"}',
      executedVersion: '$LATEST',
    },
  };
  const record = failureRecord(failed, 'RetriesExhausted', at, arn);
  assert.equal(record.requestContext.condition, 'RetriesExhausted');
  assert.equal(record.requestContext.approximateInvokeCount, 3);
  assert.deepEqual(record.responseContext, {
    statusCode: 200,
    executedVersion: '$LATEST',
    functionError: 'Unhandled',
  });
  assert.deepEqual(record.responsePayload, { errorType: 'Error', errorMessage: 'boom' });
});

test('a failure record of an event that was only ever throttled keeps the 429 and has no functionError', () => {
  const throttled: AsyncEvent = {
    ...event,
    invocations: 0,
    lastError: { type: 'TooManyRequestsException', message: 'Rate exceeded', statusCode: 429 },
  };
  const record = failureRecord(throttled, 'EventAgeExceeded', at, arn);
  assert.deepEqual(record.responseContext, { statusCode: 429, executedVersion: '$LATEST' });
  assert.deepEqual(record.responsePayload, {
    errorType: 'TooManyRequestsException',
    errorMessage: 'Rate exceeded',
  });
});

test('a non-JSON function answer is kept as a string', () => {
  const record = successRecord(event, { payload: 'plain text', executedVersion: '1' }, at, arn);
  assert.equal(record.responsePayload, 'plain text');
});

test('a dead letter survives the round trip through stream fields', () => {
  const failed: AsyncEvent = {
    ...event,
    qualifier: 'live',
    functionErrors: 3,
    invocations: 3,
    lastError: { type: 'Error', message: 'boom' },
  };
  const flat = Object.entries(deadLetterFields(failed, 'RetriesExhausted', at)).flat();
  assert.deepEqual(parseDeadLetter('1-0', flat), {
    id: '1-0',
    functionName: 'orders',
    qualifier: 'live',
    requestId: event.requestId,
    payload: '{"order":7}',
    condition: 'RetriesExhausted',
    errorType: 'Error',
    errorMessage: 'boom',
    attempts: 3,
    invocations: 3,
    acceptedAt: '2026-01-02T03:00:00.000Z',
    deadLetteredAt: '2026-01-02T03:04:05.000Z',
  });
});

test("a destination event's request id is stable per source and kind, and a usable job id", () => {
  const a = destinationRequestId(event.requestId, 'onSuccess');
  assert.equal(a, destinationRequestId(event.requestId, 'onSuccess'));
  assert.notEqual(a, destinationRequestId(event.requestId, 'onFailure'));
  assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
});
