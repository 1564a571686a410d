import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateFunctionCommand,
  DeleteFunctionCommand,
  GetFunctionCommand,
  GetFunctionConcurrencyCommand,
  GetFunctionEventInvokeConfigCommand,
  InvokeCommand,
  LambdaClient,
  ListFunctionsCommand,
  PutFunctionConcurrencyCommand,
  PutFunctionEventInvokeConfigCommand,
  ResourceConflictException,
  ResourceNotFoundException,
  UpdateFunctionCodeCommand,
  UpdateFunctionConfigurationCommand,
  waitUntilFunctionActiveV2,
  waitUntilFunctionUpdatedV2,
} from '@aws-sdk/client-lambda';
import { startHearthDev, type HearthDev } from './hearth-dev.js';
import { zipOf } from './zips.js';

/** The real AWS CLI v2 (Debian's awscli); a pip-installed v1 may shadow it on PATH. */
const AWS = process.env.HEARTH_AWS_CLI ?? '/usr/bin/aws';

const handlerOf = (version: string) =>
  `export const handler = async (event) => ({ version: ${JSON.stringify(version)}, event });`;
const base64Sha256 = (data: Buffer) => createHash('sha256').update(data).digest('base64');

let dev: HearthDev;
let scratch: string;

before(async () => {
  dev = await startHearthDev();
  scratch = await mkdtemp(join(tmpdir(), 'hearth-aws-'));
});
after(async () => {
  await dev?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

async function storedZips(): Promise<string[]> {
  return (await readdir(join(dev.dir, '.hearth', 'code')).catch(() => [] as string[])).filter((f) =>
    f.endsWith('.zip'),
  );
}

describe('the AWS CLI v2 against hearth dev', () => {
  const env = {
    PATH: process.env.PATH,
    HOME: tmpdir(),
    AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'secret',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_PAGER: '',
    AWS_CONFIG_FILE: '/nonexistent',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
  };
  function aws(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(
        AWS,
        ['--endpoint-url', dev.url, '--output', 'json', 'lambda', ...args],
        { env, timeout: 180_000 },
        (error, stdout, stderr) => {
          resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr });
        },
      );
    });
  }
  async function ok(...args: string[]): Promise<Record<string, unknown>> {
    const result = await aws(...args);
    assert.equal(result.code, 0, `aws lambda ${args.join(' ')} failed: ${result.stderr}`);
    return result.stdout.trim() ? (JSON.parse(result.stdout) as Record<string, unknown>) : {};
  }

  test('create, wait, invoke, update code, wait, invoke the new code, concurrency, event invoke config, delete', async () => {
    const v1 = join(scratch, 'v1.zip');
    const v2 = join(scratch, 'v2.zip');
    const v2Zip = await zipOf({ 'index.mjs': handlerOf('v2') });
    await writeFile(v1, await zipOf({ 'index.mjs': handlerOf('v1') }));
    await writeFile(v2, v2Zip);
    const name = 'cli-fn';
    const role = 'arn:aws:iam::000000000000:role/lambda';

    // A timeout with room for a first call on a busy machine (2 cores shared by many tests).
    const created = await ok(
      'create-function',
      '--function-name',
      name,
      '--runtime',
      'nodejs20.x',
      '--handler',
      'index.handler',
      '--role',
      role,
      '--timeout',
      '30',
      '--zip-file',
      `fileb://${v1}`,
    );
    assert.equal(created.FunctionName, name);
    assert.equal(created.State, 'Pending');

    const again = await aws(
      'create-function',
      '--function-name',
      name,
      '--runtime',
      'nodejs20.x',
      '--handler',
      'index.handler',
      '--role',
      role,
      '--zip-file',
      `fileb://${v1}`,
    );
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /ResourceConflictException/);

    await ok('wait', 'function-active-v2', '--function-name', name);
    const out = join(scratch, 'out.json');
    await ok(
      'invoke',
      '--function-name',
      name,
      '--cli-binary-format',
      'raw-in-base64-out',
      '--payload',
      '{"n":1}',
      out,
    );
    assert.deepEqual(JSON.parse(await readFile(out, 'utf8')), { version: 'v1', event: { n: 1 } });

    const updated = await ok('update-function-code', '--function-name', name, '--zip-file', `fileb://${v2}`);
    assert.equal(updated.CodeSha256, base64Sha256(v2Zip));
    assert.equal(updated.CodeSize, v2Zip.length);
    await ok('wait', 'function-updated-v2', '--function-name', name);
    await ok(
      'invoke',
      '--function-name',
      name,
      '--cli-binary-format',
      'raw-in-base64-out',
      '--payload',
      '{"n":2}',
      out,
    );
    assert.deepEqual(JSON.parse(await readFile(out, 'utf8')), { version: 'v2', event: { n: 2 } });
    assert.equal((await storedZips()).length, 1, 'the first zip is reclaimed once no function refers to it');

    assert.deepEqual(
      await ok('put-function-concurrency', '--function-name', name, '--reserved-concurrent-executions', '5'),
      { ReservedConcurrentExecutions: 5 },
    );
    assert.deepEqual(await ok('get-function-concurrency', '--function-name', name), {
      ReservedConcurrentExecutions: 5,
    });
    const tooMuch = await aws(
      'put-function-concurrency',
      '--function-name',
      name,
      '--reserved-concurrent-executions',
      '901',
    );
    assert.match(
      tooMuch.stderr,
      /InvalidParameterValueException.*UnreservedConcurrentExecution below its minimum value of \[100\]/,
    );

    const config = await ok(
      'put-function-event-invoke-config',
      '--function-name',
      name,
      '--maximum-retry-attempts',
      '0',
      '--destination-config',
      '{"OnFailure":{"Destination":"arn:aws:sqs:us-east-1:000000000000:failed"}}',
    );
    assert.equal(config.MaximumRetryAttempts, 0);
    const read = await ok('get-function-event-invoke-config', '--function-name', name);
    assert.deepEqual(read.DestinationConfig, {
      OnSuccess: {},
      OnFailure: { Destination: 'arn:aws:sqs:us-east-1:000000000000:failed' },
    });

    // The CLI checks MemorySize itself; Timeout's upper limit is the service's to enforce.
    const tooLong = await aws('update-function-configuration', '--function-name', name, '--timeout', '901');
    assert.match(tooLong.stderr, /InvalidParameterValueException.*'Timeout'.*less than or equal to 900/);

    const listed = await ok('list-functions');
    assert.ok((listed.Functions as { FunctionName: string }[]).some((f) => f.FunctionName === name));

    await ok('delete-function', '--function-name', name);
    const gone = await aws('get-function', '--function-name', name);
    assert.match(gone.stderr, /ResourceNotFoundException/);
    assert.deepEqual(await storedZips(), [], 'the code of a deleted function is reclaimed');
  });
});

describe('the AWS SDK v3 against hearth dev', () => {
  const client = () =>
    new LambdaClient({
      endpoint: dev.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    });
  const waiter = (lambda: LambdaClient) => ({ client: lambda, maxWaitTime: 120, minDelay: 1, maxDelay: 2 });
  const decode = (payload: Uint8Array | undefined) =>
    JSON.parse(Buffer.from(payload ?? []).toString('utf8')) as unknown;

  test('create, wait, invoke, update code, wait, invoke the new code, concurrency, event invoke config, paging, delete', async () => {
    const lambda = client();
    const name = 'sdk-fn';
    const v1 = await zipOf({ 'index.mjs': handlerOf('v1') });
    const v2 = await zipOf({ 'index.mjs': handlerOf('v2') });
    const created = await lambda.send(
      new CreateFunctionCommand({
        FunctionName: name,
        Runtime: 'nodejs20.x',
        Handler: 'index.handler',
        Role: 'arn:aws:iam::000000000000:role/lambda',
        Code: { ZipFile: v1 },
        MemorySize: 256,
        Timeout: 30,
        Environment: { Variables: { GREETING: 'hi' } },
      }),
    );
    assert.equal(created.CodeSha256, base64Sha256(v1));
    assert.equal(created.MemorySize, 256);
    await assert.rejects(
      lambda.send(
        new CreateFunctionCommand({
          FunctionName: name,
          Runtime: 'nodejs20.x',
          Handler: 'index.handler',
          Role: 'r',
          Code: { ZipFile: v1 },
        }),
      ),
      ResourceConflictException,
    );
    await waitUntilFunctionActiveV2(waiter(lambda), { FunctionName: name });
    const first = await lambda.send(
      new InvokeCommand({ FunctionName: name, Payload: Buffer.from('{"n":1}') }),
    );
    assert.deepEqual(decode(first.Payload), { version: 'v1', event: { n: 1 } });

    await lambda.send(new UpdateFunctionCodeCommand({ FunctionName: name, ZipFile: v2 }));
    // As on Lambda, no other update until this one has rolled out (a new instance takes far
    // longer to start than these calls take).
    const inProgress = (error: Error) => {
      assert.ok(error instanceof ResourceConflictException, String(error));
      assert.equal(
        error.message,
        `The operation cannot be performed at this time. An update is in progress for resource: arn:aws:lambda:us-east-1:000000000000:function:${name}`,
      );
      return true;
    };
    await assert.rejects(
      lambda.send(new UpdateFunctionCodeCommand({ FunctionName: name, ZipFile: v1 })),
      inProgress,
    );
    await assert.rejects(
      lambda.send(new UpdateFunctionConfigurationCommand({ FunctionName: name, Timeout: 25 })),
      inProgress,
    );
    await waitUntilFunctionUpdatedV2(waiter(lambda), { FunctionName: name });
    const second = await lambda.send(
      new InvokeCommand({ FunctionName: name, Payload: Buffer.from('{"n":2}') }),
    );
    assert.deepEqual(decode(second.Payload), { version: 'v2', event: { n: 2 } });

    await lambda.send(new UpdateFunctionConfigurationCommand({ FunctionName: name, Timeout: 20 }));
    await waitUntilFunctionUpdatedV2(waiter(lambda), { FunctionName: name });
    const fetched = await lambda.send(new GetFunctionCommand({ FunctionName: name }));
    assert.equal(fetched.Configuration?.Timeout, 20);
    assert.equal(fetched.Configuration?.MemorySize, 256, 'fields not in the update stay');
    assert.equal(fetched.Configuration?.CodeSha256, base64Sha256(v2));
    assert.deepEqual(fetched.Configuration?.Environment?.Variables, { GREETING: 'hi' });

    await lambda.send(
      new PutFunctionConcurrencyCommand({ FunctionName: name, ReservedConcurrentExecutions: 3 }),
    );
    assert.equal(
      (await lambda.send(new GetFunctionConcurrencyCommand({ FunctionName: name })))
        .ReservedConcurrentExecutions,
      3,
    );
    await lambda.send(
      new PutFunctionEventInvokeConfigCommand({
        FunctionName: name,
        MaximumRetryAttempts: 1,
        MaximumEventAgeInSeconds: 120,
      }),
    );
    const eventConfig = await lambda.send(new GetFunctionEventInvokeConfigCommand({ FunctionName: name }));
    assert.equal(eventConfig.MaximumRetryAttempts, 1);
    assert.equal(eventConfig.MaximumEventAgeInSeconds, 120);
    // Neither is an update, as on Lambda: the last update stays Successful and another may follow at
    // once, without waiting for function-updated-v2.
    const settled = await lambda.send(new GetFunctionCommand({ FunctionName: name }));
    assert.equal(settled.Configuration?.LastUpdateStatus, 'Successful');
    await lambda.send(new UpdateFunctionCodeCommand({ FunctionName: name, ZipFile: v1 }));
    await waitUntilFunctionUpdatedV2(waiter(lambda), { FunctionName: name });

    await lambda.send(
      new CreateFunctionCommand({
        FunctionName: `${name}-2`,
        Runtime: 'python3.11',
        Handler: 'app.handler',
        Role: 'r',
        Code: { ZipFile: await zipOf({ 'app.py': 'def handler(e, c):\n  return e\n' }) },
      }),
    );
    const names: string[] = [];
    let marker: string | undefined;
    let pages = 0;
    do {
      const page = await lambda.send(
        new ListFunctionsCommand({ MaxItems: 1, ...(marker ? { Marker: marker } : {}) }),
      );
      names.push(...(page.Functions ?? []).map((f) => f.FunctionName!));
      marker = page.NextMarker;
      pages += 1;
    } while (marker);
    assert.ok(names.includes(name) && names.includes(`${name}-2`), names.join());
    assert.equal(pages, names.length, 'one function per page');

    await lambda.send(new DeleteFunctionCommand({ FunctionName: name }));
    await lambda.send(new DeleteFunctionCommand({ FunctionName: `${name}-2` }));
    await assert.rejects(
      lambda.send(new GetFunctionCommand({ FunctionName: name })),
      ResourceNotFoundException,
    );
    lambda.destroy();
  });

  test('CapacityProviderConfig (Lambda Managed Instances): one environment takes its calls at once, and the config comes back', async () => {
    const lambda = client();
    const name = 'sdk-managed';
    const arn = 'arn:aws:lambda:us-east-1:000000000000:capacity-provider:fleet';
    await lambda.send(
      new CreateFunctionCommand({
        FunctionName: name,
        Runtime: 'nodejs20.x',
        Handler: 'index.handler',
        Role: 'r',
        Code: {
          ZipFile: await zipOf({
            'index.mjs': `export const handler = async (event) => {
              await new Promise((resolve) => setTimeout(resolve, event.sleep));
              return { pid: process.pid, max: process.env.AWS_LAMBDA_MAX_CONCURRENCY };
            };`,
          }),
        },
        CapacityProviderConfig: {
          LambdaManagedInstancesCapacityProviderConfig: {
            CapacityProviderArn: arn,
            PerExecutionEnvironmentMaxConcurrency: 4,
          },
        },
      }),
    );
    await waitUntilFunctionActiveV2(waiter(lambda), { FunctionName: name });
    const config = await lambda.send(new GetFunctionCommand({ FunctionName: name }));
    assert.deepEqual(config.Configuration?.CapacityProviderConfig, {
      LambdaManagedInstancesCapacityProviderConfig: {
        CapacityProviderArn: arn,
        PerExecutionEnvironmentMaxConcurrency: 4,
      },
    });
    // Warm first, so that the four calls below meet one ready environment.
    await lambda.send(new InvokeCommand({ FunctionName: name, Payload: JSON.stringify({ sleep: 0 }) }));
    const began = performance.now();
    const answers = await Promise.all(
      [1, 2, 3, 4].map(() =>
        lambda.send(new InvokeCommand({ FunctionName: name, Payload: JSON.stringify({ sleep: 600 }) })),
      ),
    );
    const elapsedMs = performance.now() - began;
    const results = answers.map((a) => decode(a.Payload) as { pid: number; max: string });
    assert.equal(new Set(results.map((r) => r.pid)).size, 1, 'one runtime process');
    assert.deepEqual(new Set(results.map((r) => r.max)), new Set(['4']));
    assert.ok(elapsedMs < 1800, `4 calls of 600 ms took ${elapsedMs.toFixed(0)} ms: not at once`);
    await lambda.send(new DeleteFunctionCommand({ FunctionName: name }));
    lambda.destroy();
  });

  test('paths answer with and without a trailing slash', async () => {
    for (const path of [
      '/2015-03-31/functions',
      '/2015-03-31/functions/',
      '/2016-08-19/account-settings',
      '/2016-08-19/account-settings/',
    ]) {
      const response = await fetch(`${dev.url}${path}`);
      assert.equal(response.status, 200, path);
      await response.arrayBuffer();
    }
  });

  test('an archive whose sha256 does not match is Failed, naming both hashes; a hand-written manifest is not the API’s to delete', async () => {
    const zip = await zipOf({ 'index.mjs': handlerOf('x') });
    const file = join(scratch, 'wrong-hash.zip');
    await writeFile(file, zip);
    const expected = 'a'.repeat(64);
    await writeFile(
      join(dev.dir, 'by-hand.yaml'),
      `apiVersion: hearth.dev/v1alpha1\nkind: Function\nmetadata:\n  name: by-hand\nspec:\n  runtime: nodejs20.x\n  code:\n    archive:\n      url: file://${file}\n      sha256: "${expected}"\n`,
    );
    const lambda = client();
    const actual = createHash('sha256').update(zip).digest('hex');
    let configuration;
    for (let i = 0; i < 100; i++) {
      configuration = (
        await lambda.send(new GetFunctionCommand({ FunctionName: 'by-hand' })).catch(() => undefined)
      )?.Configuration;
      if (configuration?.State === 'Failed') break;
      await sleep(200);
    }
    assert.equal(configuration?.State, 'Failed');
    assert.match(configuration?.StateReason ?? '', new RegExp(`${actual}.*${expected}`));
    await assert.rejects(
      lambda.send(new DeleteFunctionCommand({ FunctionName: 'by-hand' })),
      (error: Error) => {
        assert.ok(error instanceof ResourceConflictException);
        assert.match(error.message, /by-hand\.yaml/);
        return true;
      },
    );
    lambda.destroy();
  });
});
