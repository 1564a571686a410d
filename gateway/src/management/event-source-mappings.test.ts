import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EventSourceMappingResource, EventSourceMappingStatus } from '@hearth/api';
import { GatewayError } from '../core/errors.js';
import {
  applyUpdateEventSourceMapping,
  eventSourceArnOf,
  mappingState,
  parseCreateEventSourceMapping,
  parseEventSourceArn,
  toEventSourceMappingConfiguration,
} from './event-source-mappings.js';

const context = { region: 'eu-west-1', accountId: '123456789012' };
const STREAM_ARN = 'arn:hearth:redis:eu-west-1:123456789012:stream/orders';
const now = new Date('2026-01-02T03:04:05.000Z');

const refusal = (run: () => unknown): string => {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof GatewayError);
    assert.equal(error.code, 'InvalidParameterValueException');
    return error.message;
  }
  assert.fail('accepted');
};

test('EventSourceArn: Redis streams are accepted; NATS (needs a URL) and AWS services are refused by name', () => {
  assert.deepEqual(parseEventSourceArn(STREAM_ARN), { redisStream: { stream: 'orders' } });
  assert.deepEqual(parseEventSourceArn('arn:hearth:redis:::stream/a:b/c'), {
    redisStream: { stream: 'a:b/c' },
  });
  assert.match(
    refusal(() => parseEventSourceArn('arn:hearth:nats:::stream/s')),
    /^EventSourceArn .*URL/,
  );
  assert.match(
    refusal(() => parseEventSourceArn('arn:aws:sqs:us-east-1:123456789012:q')),
    /^EventSourceArn .*sqs is not an event source/,
  );
  assert.match(
    refusal(() => parseEventSourceArn(undefined)),
    /eventSourceArn/,
  );
});

test("CreateEventSourceMapping: Lambda's defaults, timestamps in epoch seconds, destinations as streams", () => {
  const input = parseCreateEventSourceMapping({
    FunctionName: 'arn:aws:lambda:eu-west-1:123456789012:function:consumer',
    EventSourceArn: STREAM_ARN,
    StartingPosition: 'AT_TIMESTAMP',
    StartingPositionTimestamp: 1767323045,
    DestinationConfig: { OnFailure: { Destination: 'arn:aws:sqs:eu-west-1:123456789012:failed' } },
    Tags: { team: 'a' },
  });
  const resource = input.build('0b5c8a4e-1111-2222-3333-444455556666', now);
  assert.equal(resource.metadata.name, '0b5c8a4e-1111-2222-3333-444455556666');
  assert.equal(resource.spec.functionName, 'consumer');
  assert.equal(resource.spec.enabled, true);
  assert.equal(resource.spec.batchSize, 100);
  assert.equal(resource.spec.startingPositionTimestamp, '2026-01-02T03:04:05.000Z');
  assert.deepEqual(resource.spec.destinationConfig, { onFailure: { stream: 'failed' } });
  assert.match(
    refusal(() => parseCreateEventSourceMapping({ EventSourceArn: STREAM_ARN })),
    /functionName/,
  );
  assert.match(
    refusal(() =>
      parseCreateEventSourceMapping({
        FunctionName: 'f',
        EventSourceArn: STREAM_ARN,
        MaximumRecordAgeInSeconds: 30,
      }),
    ),
    /maximumRecordAgeInSeconds/,
  );
  assert.match(
    refusal(() => parseCreateEventSourceMapping({ FunctionName: 'f:7', EventSourceArn: STREAM_ARN })),
    /only \$LATEST/,
  );
});

test('UpdateEventSourceMapping changes only the fields sent; the source cannot change', () => {
  const resource = parseCreateEventSourceMapping({
    FunctionName: 'f',
    EventSourceArn: STREAM_ARN,
    BatchSize: 10,
  }).build('u', now);
  const later = new Date('2026-02-01T00:00:00.000Z');
  const updated = applyUpdateEventSourceMapping(resource, { Enabled: false, MaximumRetryAttempts: 3 }, later);
  assert.equal(updated.spec.enabled, false);
  assert.equal(updated.spec.maximumRetryAttempts, 3);
  assert.equal(updated.spec.batchSize, 10, 'kept');
  const answer = toEventSourceMappingConfiguration({ resource: updated }, context);
  assert.equal(answer.LastModified, later.getTime() / 1000);
  assert.equal(answer.EventSourceMappingArn, 'arn:aws:lambda:eu-west-1:123456789012:event-source-mapping:u');
  assert.match(
    refusal(() => applyUpdateEventSourceMapping(resource, { EventSourceArn: STREAM_ARN }, later)),
    /EventSourceArn cannot be changed/,
  );
});

test("State: Creating before the controller reports, Updating behind the generation, Enabling/Disabling while it lags, then the controller's", () => {
  const resource = (enabled: boolean, generation?: number): EventSourceMappingResource => ({
    ...parseCreateEventSourceMapping({
      FunctionName: 'f',
      EventSourceArn: STREAM_ARN,
      Enabled: enabled,
    }).build('u', now),
    ...(generation === undefined ? {} : { metadata: { name: 'u', generation } }),
  });
  const status = (state: EventSourceMappingStatus['state'], extra: EventSourceMappingStatus = {}) => ({
    state,
    ...extra,
  });
  assert.equal(mappingState(resource(true), undefined).State, 'Creating');
  assert.equal(
    mappingState(resource(true, 3), status('Enabled', { observedGeneration: 2 })).State,
    'Updating',
  );
  assert.equal(
    mappingState(resource(true, 3), status('Enabled', { observedGeneration: 3 })).State,
    'Enabled',
  );
  assert.equal(mappingState(resource(true), status('Disabled')).State, 'Enabling');
  assert.equal(mappingState(resource(false), status('Enabled')).State, 'Disabling');
  assert.equal(mappingState(resource(false), status('Disabled')).State, 'Disabled');
  assert.deepEqual(mappingState(resource(true), status('Failed', { stateReason: 'stream orders: NOAUTH' })), {
    State: 'Failed',
    StateTransitionReason: 'stream orders: NOAUTH',
  });
});

test('every source kind has an ARN to be listed with', () => {
  const of = (source: EventSourceMappingResource['spec']['source']) =>
    eventSourceArnOf(
      {
        ...parseCreateEventSourceMapping({ FunctionName: 'f', EventSourceArn: STREAM_ARN }).build('m', now),
        spec: {
          ...parseCreateEventSourceMapping({ FunctionName: 'f', EventSourceArn: STREAM_ARN }).build('m', now)
            .spec,
          source,
        },
      },
      context,
    );
  assert.equal(of({ redisStream: { stream: 'orders' } }), STREAM_ARN);
  assert.equal(
    of({ nats: { url: 'nats://n:4222', stream: 'S' } }),
    'arn:hearth:nats:eu-west-1:123456789012:stream/S',
  );
  assert.equal(
    of({ schedule: { expression: 'rate(1 minute)', timezone: 'UTC' } }),
    'arn:hearth:events:eu-west-1:123456789012:rule/m',
  );
  assert.equal(
    of({ http: { method: 'ANY', pathPrefix: '/x', auth: 'none' } }),
    'arn:hearth:http:eu-west-1:123456789012:route/m',
  );
  assert.equal(of({ bucket: { bucket: 'images', events: ['s3:ObjectCreated:*'] } }), 'arn:aws:s3:::images');
});
