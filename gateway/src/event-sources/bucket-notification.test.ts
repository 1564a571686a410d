import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BucketSource } from '@hearth/api';
import { GatewayError } from '../core/errors.js';
import { deliveryRequestId, parseNotification, recordMatches, toS3Record } from './bucket-notification.js';

// One record as MinIO's webhook sends it (the shape of its bucket notification guide's example).
const minioRecord = (key: string, eventName = 's3:ObjectCreated:Put', bucket = 'images') => ({
  eventVersion: '2.0',
  eventSource: 'minio:s3',
  awsRegion: '',
  eventTime: '2018-10-31T09:31:11Z',
  eventName,
  userIdentity: { principalId: 'minio' },
  requestParameters: { sourceIPAddress: '10.1.1.1' },
  responseElements: {
    'x-amz-request-id': '1562A792DAA53426',
    'x-minio-origin-endpoint': 'http://10.0.3.1:9000',
  },
  s3: {
    s3SchemaVersion: '1.0',
    configurationId: 'Config',
    bucket: { name: bucket, ownerIdentity: { principalId: 'minio' }, arn: `arn:aws:s3:::${bucket}` },
    object: {
      key,
      size: 162023,
      eTag: '5337769ffa594e742408ad3f30713cd7',
      contentType: 'image/jpeg',
      userMetadata: { 'content-type': 'image/jpeg' },
      versionId: '1',
      sequencer: '1562A792DAA53426',
    },
  },
  source: { host: '', port: '', userAgent: 'MinIO' },
});
const body = (value: unknown) => Buffer.from(JSON.stringify(value));

test("MinIO's webhook body and plain S3 notification JSON both parse; problems are named", () => {
  const record = minioRecord('gopher.jpg');
  assert.equal(
    parseNotification(
      body({ EventName: 's3:ObjectCreated:Put', Key: 'images/gopher.jpg', Records: [record] }),
    ).length,
    1,
  );
  assert.equal(parseNotification(body({ Records: [record, record] })).length, 2);
  const problem = (value: Buffer) => {
    try {
      parseNotification(value);
    } catch (error) {
      assert.ok(error instanceof GatewayError);
      assert.equal(error.status, 400);
      return error.message;
    }
    assert.fail('parsed');
  };
  assert.match(problem(Buffer.from('{nope')), /Could not parse request body into json/);
  assert.match(problem(body({ EventName: 'x' })), /Records must be an array/);
  assert.match(
    problem(body({ Records: [{ eventName: 'x', s3: { bucket: { name: 'b' }, object: {} } }] })),
    /Records\[0\]\.s3\.object\.key/,
  );
});

test('filters: bucket, event patterns with a * suffix, prefix and suffix of the decoded key', () => {
  const source = (extra: Partial<BucketSource>): BucketSource => ({
    events: ['s3:ObjectCreated:*'],
    ...extra,
  });
  const put = minioRecord('photos/cat+one.jpg');
  assert.ok(recordMatches(put, source({})));
  assert.ok(recordMatches(put, source({ bucket: 'images', prefix: 'photos/', suffix: '.jpg' })));
  assert.ok(recordMatches(put, source({ prefix: 'photos/cat one' })), 'keys compare URL-decoded');
  assert.ok(!recordMatches(put, source({ bucket: 'other' })));
  assert.ok(!recordMatches(put, source({ prefix: 'docs/' })));
  assert.ok(!recordMatches(put, source({ suffix: '.png' })));
  const removed = minioRecord('photos/a.jpg', 's3:ObjectRemoved:Delete');
  assert.ok(!recordMatches(removed, source({})), 'the default takes only ObjectCreated');
  assert.ok(recordMatches(removed, source({ events: ['s3:ObjectRemoved:Delete'] })));
  assert.ok(
    recordMatches({ ...put, eventName: 'ObjectCreated:Put' }, source({ events: ['s3:ObjectCreated:Put'] })),
    'S3 names without s3:',
  );
  assert.ok(!recordMatches(put, source({ events: ['s3:ObjectCreated:Copy'] })));
});

test("records come out in S3's shape: aws:s3, the event name without s3:, MinIO's extras dropped", () => {
  const [record] = parseNotification(body({ Records: [minioRecord('gopher.jpg')] }));
  assert.deepEqual(toS3Record(record!, { region: 'us-east-1', configurationId: 'thumbs' }), {
    eventVersion: '2.0',
    eventSource: 'aws:s3',
    awsRegion: 'us-east-1',
    eventTime: '2018-10-31T09:31:11Z',
    eventName: 'ObjectCreated:Put',
    userIdentity: { principalId: 'minio' },
    requestParameters: { sourceIPAddress: '10.1.1.1' },
    responseElements: {
      'x-amz-request-id': '1562A792DAA53426',
      'x-minio-origin-endpoint': 'http://10.0.3.1:9000',
    },
    s3: {
      s3SchemaVersion: '1.0',
      configurationId: 'Config',
      bucket: { name: 'images', ownerIdentity: { principalId: 'minio' }, arn: 'arn:aws:s3:::images' },
      object: {
        key: 'gopher.jpg',
        size: 162023,
        eTag: '5337769ffa594e742408ad3f30713cd7',
        versionId: '1',
        sequencer: '1562A792DAA53426',
      },
    },
  });
});

test('a record sent twice gets the same request id (stored once while queued); another record another id', () => {
  const defaults = { region: 'us-east-1', configurationId: 'm' };
  const once = toS3Record(parseNotification(body({ Records: [minioRecord('a.jpg')] }))[0]!, defaults);
  const again = toS3Record(parseNotification(body({ Records: [minioRecord('a.jpg')] }))[0]!, defaults);
  const other = toS3Record(parseNotification(body({ Records: [minioRecord('b.jpg')] }))[0]!, defaults);
  assert.equal(deliveryRequestId('m', once), deliveryRequestId('m', again));
  assert.notEqual(deliveryRequestId('m', once), deliveryRequestId('m', other));
  assert.match(
    deliveryRequestId('m', once),
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  );
});
