import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AddressInfo } from 'node:net';
import type { PushMapping } from '@hearth/api';
import { startRedis, type RedisServer } from '../harness/index.js';
import { API_KEY, GatewayFixture, type RunningGateway } from '../gateway/fixture.js';

// MinIO's webhook body for a put object (see test/fixtures/bucket-notifications/README.md).
const MINIO_PUT = new URL('../../fixtures/bucket-notifications/minio-put.json', import.meta.url);

/** Posts every event it gets to the recorder the test runs. */
const RECORDS_EVENTS = `
export const handler = async (event) => {
  const response = await fetch(process.env.RECORDER_URL, { method: 'POST', body: JSON.stringify(event) });
  if (!response.ok) throw new Error('recorder answered ' + response.status);
  return 'recorded';
};
`;

interface S3Event {
  Records: {
    eventSource: string;
    eventName: string;
    awsRegion: string;
    s3: { bucket: { name: string; arn: string }; object: { key: string; size?: number; eTag?: string } };
  }[];
}

const bucketMapping = (name: string, bucket: PushMapping['bucket'], enabled = true): PushMapping => ({
  name,
  namespace: 'default',
  functionName: 'thumbs',
  enabled,
  bucket: bucket!,
});

describe('bucket notifications: MinIO webhook bodies become async S3 events of the function', () => {
  let redis: RedisServer;
  let fixture: GatewayFixture;
  let gateway: RunningGateway;
  let recorder: Server;
  const received: S3Event[] = [];
  let minioPut: { EventName: string; Key: string; Records: Record<string, unknown>[] };

  /** MinIO's put notification for another key (and event name), as it would send it. */
  function notification(key: string, eventName = 's3:ObjectCreated:Put', bucket = 'images') {
    const [record] = structuredClone(minioPut.Records) as [
      { eventName: string; s3: Record<string, Record<string, unknown>> },
    ];
    record.eventName = eventName;
    record.s3.object!.key = key;
    record.s3.object!.sequencer = `${Date.now().toString(16)}${Math.random().toString(16).slice(2, 8)}`;
    record.s3.bucket!.name = bucket;
    return { ...minioPut, EventName: eventName, Key: `${bucket}/${key}`, Records: [record] };
  }

  const post = (
    mapping: string,
    body: unknown,
    headers: Record<string, string> = { authorization: `Bearer ${API_KEY}` },
  ) =>
    fetch(`${gateway.url}/hearth/v1/bucket-notifications/${mapping}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  async function delivered(key: string): Promise<S3Event['Records'][number]> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const found = received.flatMap((e) => e.Records).find((r) => r.s3.object.key === key);
      if (found) return found;
      if (Date.now() > deadline) assert.fail(`no event for ${key}; got ${JSON.stringify(received)}`);
      await sleep(50);
    }
  }

  before(async () => {
    minioPut = JSON.parse(await readFile(MINIO_PUT, 'utf8')) as typeof minioPut;
    recorder = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push(JSON.parse(Buffer.concat(chunks).toString()) as S3Event);
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
    const recorderUrl = `http://127.0.0.1:${(recorder.address() as AddressInfo).port}/`;

    redis = await startRedis();
    fixture = new GatewayFixture(redis.url);
    const thumbs = await fixture.addFunction({
      name: 'thumbs',
      source: RECORDS_EVENTS,
      spec: { env: [{ name: 'RECORDER_URL', value: recorderUrl }] },
    });
    await fixture.addInstance(thumbs);
    await fixture.setPushMapping(
      bucketMapping('images', { bucket: 'images', events: ['s3:ObjectCreated:*'] }),
    );
    await fixture.setPushMapping(
      bucketMapping('photos', {
        bucket: 'images',
        events: ['s3:ObjectCreated:Put'],
        prefix: 'photos/',
        suffix: '.jpg',
      }),
    );
    await fixture.setPushMapping(bucketMapping('paused', { events: ['s3:ObjectCreated:*'] }, false));
    await fixture.setPushMapping({
      name: 'web',
      namespace: 'default',
      functionName: 'thumbs',
      enabled: true,
      http: { method: 'ANY', pathPrefix: '/web', auth: 'none' },
    });
    gateway = await fixture.startGateway();
  });

  after(async () => {
    await fixture?.stop();
    await redis?.stop();
    recorder?.close();
  });

  test("MinIO's documented put notification reaches the function as S3's event, asynchronously", async () => {
    const response = await post('images', minioPut);
    assert.equal(response.status, 200);
    const answer = (await response.json()) as { queued: number; filtered: number; requestIds: string[] };
    assert.deepEqual([answer.queued, answer.filtered, answer.requestIds.length], [1, 0, 1]);
    const record = await delivered('gopher.jpg');
    assert.equal(record.eventSource, 'aws:s3');
    assert.equal(record.eventName, 'ObjectCreated:Put', "S3's name, without MinIO's s3: prefix");
    assert.equal(record.awsRegion, 'us-east-1', "MinIO's empty region becomes the gateway's");
    assert.deepEqual(record.s3.bucket, {
      name: 'images',
      ownerIdentity: { principalId: '21EJ9HYV110O8NVX2VMS' },
      arn: 'arn:aws:s3:::images',
    });
    assert.deepEqual(record.s3.object, {
      key: 'gopher.jpg',
      size: 162023,
      eTag: '5337769ffa594e742408ad3f30713cd7',
      versionId: '1',
      sequencer: '1562A792DAA53426',
    });
  });

  test('filters: only keys under the prefix, with the suffix, of the named events and bucket reach the function', async () => {
    const records = [
      notification('photos/cat.jpg'),
      notification('photos/cat.png'),
      notification('docs/cat.jpg'),
      notification('photos/old.jpg', 's3:ObjectRemoved:Delete'),
      notification('photos/copy.jpg', 's3:ObjectCreated:Copy'),
      notification('photos/elsewhere.jpg', 's3:ObjectCreated:Put', 'other-bucket'),
    ].flatMap((n) => n.Records);
    // Plain S3 notification JSON (no EventName/Key) is accepted too.
    const response = await post('photos', { Records: records });
    assert.equal(response.status, 200);
    const answer = (await response.json()) as { queued: number; filtered: number };
    assert.deepEqual([answer.queued, answer.filtered], [1, 5]);
    await delivered('photos/cat.jpg');
    // The one taken event has arrived; give any wrongly taken one the same time again to show up.
    await sleep(1000);
    const keys = received.flatMap((e) => e.Records).map((r) => r.s3.object.key);
    for (const key of [
      'photos/cat.png',
      'docs/cat.jpg',
      'photos/old.jpg',
      'photos/copy.jpg',
      'photos/elsewhere.jpg',
    ])
      assert.ok(!keys.includes(key), `${key} was filtered out`);

    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    assert.match(
      metrics,
      /^hearth_event_source_deliveries_total\{mapping="photos",function="thumbs",source="bucket",outcome="queued"\} 1$/m,
    );
    assert.match(
      metrics,
      /^hearth_event_source_deliveries_total\{mapping="photos",function="thumbs",source="bucket",outcome="filtered"\} 5$/m,
    );
  });

  test('the gateway authenticates the notifier: no key or a wrong key is refused', async () => {
    const without = await post('images', minioPut, {});
    assert.equal(without.status, 403);
    assert.equal(without.headers.get('x-amzn-errortype'), 'AccessDeniedException');
    const wrong = await post('images', minioPut, { authorization: 'Bearer wrong' });
    assert.equal(wrong.status, 403);
    assert.equal(wrong.headers.get('x-amzn-errortype'), 'UnrecognizedClientException');
  });

  test('unknown mapping 404, disabled 409, a body that is not a notification 400 naming the problem', async () => {
    const unknown = await post('nope', minioPut);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.headers.get('x-amzn-errortype'), 'ResourceNotFoundException');
    assert.equal((await post('web', minioPut)).status, 404, 'an HTTP route is not a bucket mapping');
    const paused = await post('paused', minioPut);
    assert.equal(paused.status, 409);
    assert.equal(paused.headers.get('x-amzn-errortype'), 'ResourceConflictException');
    const broken = await post('images', '{"Records": [');
    assert.equal(broken.status, 400);
    assert.match(
      ((await broken.json()) as { message: string }).message,
      /Could not parse request body into json/,
    );
    const shapeless = await post('images', {
      Records: [{ eventName: 's3:ObjectCreated:Put', s3: { bucket: { name: 'images' } } }],
    });
    assert.equal(shapeless.status, 400);
    assert.match(((await shapeless.json()) as { message: string }).message, /Records\[0\]\.s3\.object\.key/);
  });
});
