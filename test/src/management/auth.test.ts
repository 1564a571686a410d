import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateFunctionCommand, GetFunctionCommand, LambdaClient } from '@aws-sdk/client-lambda';
import {
  freePort,
  startProcess,
  startRedis,
  type RedisServer,
  type RunningProcess,
} from '../harness/index.js';
import { zipOf } from './zips.js';

const GATEWAY_MAIN = fileURLToPath(import.meta.resolve('@hearth/gateway/main'));
const accessKey = { accessKeyId: 'AKIDHEARTHTEST', secretAccessKey: 'hearth-test-secret' };
const apiKey = 'hearth-test-api-key';

let redis: RedisServer;
let gateway: RunningProcess;
let root: string;
let url: string;

before(async () => {
  redis = await startRedis();
  root = await mkdtemp(join(tmpdir(), 'hearth-mgmt-auth-'));
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  gateway = await startProcess({
    name: 'gateway',
    command: process.execPath,
    args: [
      GATEWAY_MAIN,
      `--port=${port}`,
      '--host=127.0.0.1',
      `--redis-url=${redis.url}`,
      `--functions-dir=${root}`,
      `--access-keys=${accessKey.accessKeyId}:${accessKey.secretAccessKey}`,
      `--api-keys=${apiKey}`,
      '--log-level=warn',
    ],
    ready: { url: `${url}/healthz` },
  });
});
after(async () => {
  await gateway?.stop();
  await redis?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

const lambda = (secretAccessKey = accessKey.secretAccessKey) =>
  new LambdaClient({
    endpoint: url,
    region: 'us-east-1',
    credentials: { ...accessKey, secretAccessKey },
    maxAttempts: 1,
  });

test('a SigV4-signed CreateFunction with a zip of several MB is verified over its whole body and accepted', async () => {
  const zip = await zipOf({
    'index.mjs': 'export const handler = async () => 1;',
    'data.bin': randomBytes(3 * 1024 * 1024),
  });
  const client = lambda();
  const created = await client.send(
    new CreateFunctionCommand({
      FunctionName: 'signed',
      Runtime: 'nodejs20.x',
      Handler: 'index.handler',
      Role: 'r',
      Code: { ZipFile: zip },
    }),
  );
  assert.equal(created.CodeSize, zip.length);
  assert.equal(
    (await client.send(new GetFunctionCommand({ FunctionName: 'signed' }))).Configuration?.FunctionName,
    'signed',
  );
  client.destroy();
});

test('callers without valid credentials are refused, on the Lambda routes and the code store alike', async () => {
  const wrong = lambda('not-the-secret');
  await assert.rejects(
    wrong.send(new GetFunctionCommand({ FunctionName: 'signed' })),
    (error: Error) => error.name === 'InvalidSignatureException',
  );
  wrong.destroy();

  const anonymous = await fetch(`${url}/2015-03-31/functions`);
  assert.equal(anonymous.status, 403);
  assert.equal(anonymous.headers.get('x-amzn-errortype'), 'AccessDeniedException');
  await anonymous.arrayBuffer();

  const bearer = await fetch(`${url}/2015-03-31/functions`, {
    headers: { authorization: `Bearer ${apiKey}` },
  });
  assert.equal(bearer.status, 200);
  const { Functions } = (await bearer.json()) as { Functions: { FunctionName: string }[] };
  assert.deepEqual(
    Functions.map((f) => f.FunctionName),
    ['signed'],
  );

  // Stored code is addressed by its sha256 and open to function pods, which hold no key.
  const code = await fetch(`${url}/hearth/v1/code/${'0'.repeat(64)}.zip`);
  assert.equal(code.status, 404);
  await code.arrayBuffer();
});
