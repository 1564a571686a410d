import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CodeStorageExceededException,
  CreateFunctionCommand,
  DeleteFunctionCommand,
  GetAccountSettingsCommand,
  InvokeCommand,
  LambdaClient,
  UpdateFunctionCodeCommand,
  waitUntilFunctionActiveV2,
  waitUntilFunctionUpdatedV2,
} from '@aws-sdk/client-lambda';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { S3CodeStore } from '@hearth/gateway/code-store/s3-store';
import { findGofakes3, GOFAKES3_MISSING, startS3Server, type S3Server } from '../harness/index.js';
import { startHearthDev, type HearthDev } from './hearth-dev.js';
import { zipOf } from './zips.js';

const PREFIX = 'code/';
/** Room for the small handlers below, not for the 64 KB zip of random bytes. */
const QUOTA_BYTES = 32 * 1024;
const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' };

const handlerOf = (version: string) =>
  `export const handler = async (event) => ({ version: ${JSON.stringify(version)}, event });`;
const sha256Of = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe(
  'the management API with an S3-compatible bucket as its code store',
  { skip: findGofakes3() ? false : GOFAKES3_MISSING },
  () => {
    let s3Server: S3Server;
    let dev: HearthDev;
    let s3: S3Client;
    let lambda: LambdaClient;

    before(async () => {
      s3Server = await startS3Server();
      dev = await startHearthDev({
        HEARTH_CODE_STORE_S3_BUCKET: s3Server.bucket,
        HEARTH_CODE_STORE_S3_ENDPOINT: s3Server.endpoint,
        HEARTH_CODE_STORE_S3_PREFIX: PREFIX,
        HEARTH_CODE_STORE_BYTES: String(QUOTA_BYTES),
        // The gateway's S3 client finds its credentials the standard way.
        AWS_ACCESS_KEY_ID: credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      });
      s3 = new S3Client({
        endpoint: s3Server.endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials,
      });
      lambda = new LambdaClient({ endpoint: dev.url, region: 'us-east-1', credentials });
    });
    after(async () => {
      lambda?.destroy();
      s3?.destroy();
      await dev?.stop();
      await s3Server?.stop();
    });

    const waiter = () => ({ client: lambda, maxWaitTime: 120, minDelay: 1, maxDelay: 2 });
    async function keys(prefix = PREFIX): Promise<string[]> {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: s3Server.bucket, Prefix: prefix }));
      return (page.Contents ?? []).map((object) => object.Key!).sort();
    }
    async function invoke(name: string): Promise<unknown> {
      const answer = await lambda.send(new InvokeCommand({ FunctionName: name, Payload: Buffer.from('{}') }));
      return JSON.parse(Buffer.from(answer.Payload ?? []).toString('utf8'));
    }

    test('code lands in the bucket under its sha256, runs, is replaced, is bounded by the quota and swept', async () => {
      const name = 's3-fn';
      const v1 = await zipOf({ 'index.mjs': handlerOf('v1') });
      const v2 = await zipOf({ 'index.mjs': handlerOf('v2') });
      await lambda.send(
        new CreateFunctionCommand({
          FunctionName: name,
          Runtime: 'nodejs20.x',
          Handler: 'index.handler',
          Role: 'arn:aws:iam::000000000000:role/lambda',
          Code: { ZipFile: v1 },
          Timeout: 30,
        }),
      );
      assert.deepEqual(await keys(), [`${PREFIX}${sha256Of(v1)}.zip`]);
      const object = await s3.send(
        new GetObjectCommand({ Bucket: s3Server.bucket, Key: `${PREFIX}${sha256Of(v1)}.zip` }),
      );
      assert.ok(
        Buffer.from(await object.Body!.transformToByteArray()).equals(v1),
        'the bucket holds the zip itself',
      );
      assert.deepEqual(
        (await readdir(join(dev.dir, '.hearth')).catch(() => [])).filter((f) => f === 'code'),
        [],
        'nothing is kept in the functions directory',
      );

      // The controller fetches the code through the gateway, which reads it from the bucket.
      await waitUntilFunctionActiveV2(waiter(), { FunctionName: name });
      assert.deepEqual(await invoke(name), { version: 'v1', event: {} });
      const download = await fetch(`${dev.url}/hearth/v1/code/${sha256Of(v1)}.zip`);
      assert.equal(download.status, 200);
      assert.ok(Buffer.from(await download.arrayBuffer()).equals(v1));
      const unknown = await fetch(`${dev.url}/hearth/v1/code/${'0'.repeat(64)}.zip`);
      assert.equal(unknown.status, 404);
      await unknown.arrayBuffer();

      await lambda.send(new UpdateFunctionCodeCommand({ FunctionName: name, ZipFile: v2 }));
      await waitUntilFunctionUpdatedV2(waiter(), { FunctionName: name });
      assert.deepEqual(await invoke(name), { version: 'v2', event: {} });
      assert.deepEqual(await keys(), [`${PREFIX}${sha256Of(v2)}.zip`], 'the replaced zip is swept');

      const settings = await lambda.send(new GetAccountSettingsCommand({}));
      assert.equal(settings.AccountLimit?.TotalCodeSize, QUOTA_BYTES);
      assert.equal(settings.AccountUsage?.TotalCodeSize, v2.length);

      // Random bytes do not compress: this zip is larger than the whole quota.
      const large = await zipOf({ 'index.mjs': handlerOf('large'), 'data.bin': randomBytes(64 * 1024) });
      await assert.rejects(
        lambda.send(
          new CreateFunctionCommand({
            FunctionName: 'too-large',
            Runtime: 'nodejs20.x',
            Handler: 'index.handler',
            Role: 'r',
            Code: { ZipFile: large },
          }),
        ),
        (error: Error) => {
          assert.ok(error instanceof CodeStorageExceededException, String(error));
          assert.match(error.message, new RegExp(`${v2.length} of ${QUOTA_BYTES} bytes are used`));
          return true;
        },
      );
      assert.deepEqual(await keys(), [`${PREFIX}${sha256Of(v2)}.zip`], 'a refused zip is not stored');

      // A zip no function refers to (left by an interrupted upload, say) goes at the next sweep;
      // objects outside the prefix are not the store's and stay.
      const stray = `${PREFIX}${'f'.repeat(64)}.zip`;
      await s3.send(new PutObjectCommand({ Bucket: s3Server.bucket, Key: stray, Body: v1 }));
      await s3.send(
        new PutObjectCommand({ Bucket: s3Server.bucket, Key: 'other/notes.txt', Body: 'keep me' }),
      );
      await lambda.send(new DeleteFunctionCommand({ FunctionName: name }));
      assert.deepEqual(await keys(), [], 'the deleted function’s zip and the stray one are swept');
      assert.deepEqual(await keys('other/'), ['other/notes.txt']);
    });

    test('a missing bucket is an error naming it, never "no such code"', async () => {
      // The store takes its credentials from the SDK's chain, here the environment.
      process.env.AWS_ACCESS_KEY_ID = credentials.accessKeyId;
      process.env.AWS_SECRET_ACCESS_KEY = credentials.secretAccessKey;
      const store = new S3CodeStore(
        {
          bucket: 'no-such-bucket',
          endpoint: s3Server.endpoint,
          region: 'us-east-1',
          prefix: '',
          forcePathStyle: true,
        },
        QUOTA_BYTES,
      );
      const zip = await zipOf({ 'index.mjs': handlerOf('lost') });
      const namesTheBucket = /code store s3:\/\/no-such-bucket\/: .*NoSuchBucket/;
      await assert.rejects(store.put(zip), namesTheBucket);
      await assert.rejects(store.openRead(sha256Of(zip)), namesTheBucket);
    });
  },
);
