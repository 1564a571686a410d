import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  InvokeCommand,
  LambdaClient,
  RequestTooLargeException,
  ResourceNotFoundException,
  TooManyRequestsException,
} from '@aws-sdk/client-lambda';
import { startRedis, type RedisServer } from '../harness/index.js';
import { ACCESS_KEY, API_KEY, GatewayFixture, type RunningGateway } from './fixture.js';

const run = promisify(execFile);

const ECHO = `
export const handler = async (event, context) => {
  console.log('hello-from-echo ' + context.awsRequestId);
  return { event, requestId: context.awsRequestId, clientContext: context.clientContext ?? null };
};
`;
const FAILS = `export const handler = async () => { throw new TypeError('boom'); };`;

describe('gateway Invoke with real clients (AWS SDK v3, AWS CLI v2, curl-style) over SigV4 and Bearer auth', () => {
  let redis: RedisServer;
  let fixture: GatewayFixture;
  let gateway: RunningGateway;
  let lambda: LambdaClient;

  before(async () => {
    redis = await startRedis();
    fixture = new GatewayFixture(redis.url);
    const echo = await fixture.addFunction({ name: 'echo', source: ECHO });
    const fails = await fixture.addFunction({ name: 'fails', source: FAILS });
    await fixture.addFunction({ name: 'blocked', source: ECHO, spec: { concurrency: { reserved: 0 } } });
    await fixture
      .addFunction({ name: 'pending', source: ECHO })
      .then((route) =>
        fixture.redis.set(`hearth:fn:pending`, JSON.stringify({ ...route, state: 'Pending' })),
      );
    await Promise.all([fixture.addInstance(echo), fixture.addInstance(fails)]);
    gateway = await fixture.startGateway();
    lambda = new LambdaClient({
      endpoint: gateway.url,
      region: 'us-east-1',
      credentials: ACCESS_KEY,
      maxAttempts: 1,
    });
  });

  after(async () => {
    lambda?.destroy();
    await fixture?.stop();
    await redis?.stop();
  });

  test('sync invoke by name, by ARN and with a qualifier returns the result and Lambda headers', async () => {
    const clientContext = Buffer.from(JSON.stringify({ custom: { who: 'test' } })).toString('base64');
    const out = await lambda.send(
      new InvokeCommand({
        FunctionName: 'echo',
        Payload: Buffer.from('{"hello":"world"}'),
        ClientContext: clientContext,
      }),
    );
    assert.equal(out.StatusCode, 200);
    assert.equal(out.ExecutedVersion, '$LATEST');
    assert.equal(out.FunctionError, undefined);
    const body = JSON.parse(Buffer.from(out.Payload!).toString());
    assert.deepEqual(body.event, { hello: 'world' });
    assert.equal(body.requestId, out.$metadata.requestId, 'the function sees the request id the caller gets');
    assert.deepEqual(body.clientContext?.custom ?? body.clientContext?.Custom, { who: 'test' });

    const byArn = await lambda.send(
      new InvokeCommand({
        FunctionName: 'arn:aws:lambda:us-east-1:000000000000:function:echo',
        Qualifier: '$LATEST',
        Payload: Buffer.from('[1]'),
      }),
    );
    assert.deepEqual(JSON.parse(Buffer.from(byArn.Payload!).toString()).event, [1]);
    const partial = await lambda.send(
      new InvokeCommand({ FunctionName: 'echo:$LATEST', Payload: Buffer.from('2') }),
    );
    assert.equal(JSON.parse(Buffer.from(partial.Payload!).toString()).event, 2);
  });

  test('DryRun answers 204 without running; Tail returns the invocation log', async () => {
    const dry = await lambda.send(new InvokeCommand({ FunctionName: 'echo', InvocationType: 'DryRun' }));
    assert.equal(dry.StatusCode, 204);
    const tail = await lambda.send(
      new InvokeCommand({ FunctionName: 'echo', LogType: 'Tail', Payload: Buffer.from('{}') }),
    );
    const log = Buffer.from(tail.LogResult!, 'base64').toString();
    assert.match(log, new RegExp(`hello-from-echo ${tail.$metadata.requestId}`));
    assert.match(log, /REPORT RequestId:/);
  });

  test('a function error is a 200 with X-Amz-Function-Error: Unhandled and the error body', async () => {
    const out = await lambda.send(new InvokeCommand({ FunctionName: 'fails', Payload: Buffer.from('{}') }));
    assert.equal(out.StatusCode, 200);
    assert.equal(out.FunctionError, 'Unhandled');
    const error = JSON.parse(Buffer.from(out.Payload!).toString());
    assert.equal(error.errorType, 'TypeError');
    assert.equal(error.errorMessage, 'boom');
  });

  test('unknown function 404, too large 413, reserved 0 429: the SDK typed errors', async () => {
    await assert.rejects(
      lambda.send(new InvokeCommand({ FunctionName: 'nope', Payload: Buffer.from('{}') })),
      (error: unknown) => {
        assert.ok(error instanceof ResourceNotFoundException);
        assert.equal(
          error.message,
          'Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope',
        );
        return true;
      },
    );
    const big = Buffer.from(JSON.stringify({ data: 'x'.repeat(6_291_456) }));
    await assert.rejects(
      lambda.send(new InvokeCommand({ FunctionName: 'echo', Payload: big })),
      (error: unknown) => {
        assert.ok(error instanceof RequestTooLargeException, String(error));
        assert.equal(error.$metadata.httpStatusCode, 413);
        return true;
      },
    );
    await assert.rejects(
      lambda.send(new InvokeCommand({ FunctionName: 'blocked', Payload: Buffer.from('{}') })),
      (error: unknown) => {
        assert.ok(error instanceof TooManyRequestsException, String(error));
        assert.equal(error.Reason, 'ReservedFunctionConcurrentInvocationLimitExceeded');
        assert.equal(error.$metadata.httpStatusCode, 429);
        return true;
      },
    );
  });

  test('Event answers 202 at once and the event then runs on the async side', async () => {
    const out = await lambda.send(
      new InvokeCommand({
        FunctionName: 'echo',
        InvocationType: 'Event',
        Payload: Buffer.from('{"async":true}'),
      }),
    );
    assert.equal(out.StatusCode, 202);
    const big = Buffer.from(JSON.stringify({ data: 'x'.repeat(1_048_576) }));
    await assert.rejects(
      lambda.send(new InvokeCommand({ FunctionName: 'echo', InvocationType: 'Event', Payload: big })),
      RequestTooLargeException,
    );
    const deadline = Date.now() + 10_000;
    for (;;) {
      const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
      if (/hearth_invocations_total\{function="echo",mode="async",outcome="success"\} 1/.test(metrics)) break;
      assert.ok(Date.now() < deadline, 'the event ran within 10 s');
      await sleep(100);
    }
  });

  test('bad input and state: non-JSON 400, a Pending function 409', async () => {
    const notJson = await fetch(`${gateway.url}/2015-03-31/functions/echo/invocations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}` },
      body: '{oops',
    });
    assert.equal(notJson.status, 400);
    assert.equal(notJson.headers.get('x-amzn-errortype'), 'InvalidRequestContentException');
    assert.match(
      ((await notJson.json()) as { message: string }).message,
      /Could not parse request body into json/,
    );
    const pending = await fetch(`${gateway.url}/2015-03-31/functions/pending/invocations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}` },
      body: '{}',
    });
    assert.equal(pending.status, 409);
    assert.equal(pending.headers.get('x-amzn-errortype'), 'ResourceConflictException');
  });

  test('auth: a wrong secret is 403 InvalidSignatureException, no credentials 403, a Bearer key works', async () => {
    const wrong = new LambdaClient({
      endpoint: gateway.url,
      region: 'us-east-1',
      credentials: { ...ACCESS_KEY, secretAccessKey: 'wrong' },
      maxAttempts: 1,
    });
    await assert.rejects(
      wrong.send(new InvokeCommand({ FunctionName: 'echo', Payload: Buffer.from('{}') })),
      (error: Error & { $metadata?: { httpStatusCode?: number } }) => {
        assert.equal(error.name, 'InvalidSignatureException');
        assert.equal(error.$metadata?.httpStatusCode, 403);
        return true;
      },
    );
    wrong.destroy();
    const unknownKey = new LambdaClient({
      endpoint: gateway.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDOTHER', secretAccessKey: 'x' },
      maxAttempts: 1,
    });
    await assert.rejects(unknownKey.send(new InvokeCommand({ FunctionName: 'echo' })), {
      name: 'UnrecognizedClientException',
    });
    unknownKey.destroy();

    const anonymous = await fetch(`${gateway.url}/2015-03-31/functions/echo/invocations`, {
      method: 'POST',
      body: '{}',
    });
    assert.equal(anonymous.status, 403);
    assert.equal(anonymous.headers.get('x-amzn-errortype'), 'AccessDeniedException');
    const badBearer = await fetch(`${gateway.url}/function/echo`, {
      method: 'POST',
      headers: { authorization: 'Bearer nope' },
      body: '{}',
    });
    assert.equal(badBearer.status, 403);

    const ok = await fetch(`${gateway.url}/function/echo`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}` },
      body: '{"via":"curl"}',
    });
    assert.equal(ok.status, 200);
    assert.deepEqual(((await ok.json()) as { event: unknown }).event, { via: 'curl' });
    const failed = await fetch(`${gateway.url}/function/fails`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}` },
      body: '{}',
    });
    assert.equal(failed.status, 500, 'the curl route shows a function error as a 500');
    assert.equal(((await failed.json()) as { errorType: string }).errorType, 'TypeError');

    assert.equal((await fetch(`${gateway.url}/healthz`)).status, 200, '/healthz needs no credentials');
    assert.equal((await fetch(`${gateway.url}/metrics`)).status, 200, '/metrics needs no credentials');
  });

  test('garbage, half-sent bodies and callers that hang up do not hurt the gateway', async () => {
    const { port } = new URL(gateway.url);
    const send = (raw: string, hangUpAfterMs: number) =>
      new Promise<string>((resolve) => {
        const socket = connect(Number(port), '127.0.0.1', () => socket.write(raw));
        let answer = '';
        socket.on('data', (chunk) => (answer += chunk));
        socket.on('close', () => resolve(answer));
        socket.on('error', () => resolve(answer));
        setTimeout(() => socket.destroy(), hangUpAfterMs);
      });
    assert.match(await send('NOT HTTP AT ALL\r\n\r\n', 2000), /^HTTP\/1\.1 400/);
    assert.match(
      await send('POST /function/echo HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n', 2000),
      /^HTTP\/1\.1 400/,
    );
    // A body promised but never finished, and a call whose caller leaves while it runs.
    await send(
      `POST /function/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\nContent-Length: 1000\r\n\r\n{"a":`,
      200,
    );
    await send(
      `POST /function/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\nContent-Length: 2\r\n\r\n{}`,
      5,
    );
    assert.equal((await fetch(`${gateway.url}/healthz`)).status, 200);
    const after = await lambda.send(
      new InvokeCommand({ FunctionName: 'echo', Payload: Buffer.from('{"still":"here"}') }),
    );
    assert.deepEqual(JSON.parse(Buffer.from(after.Payload!).toString()).event, { still: 'here' });
  });

  test('one connection carries Invoke calls and other operations in any order, pipelined, chunked after 100-continue', async () => {
    const { port } = new URL(gateway.url);
    const socket = connect(Number(port), '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    const answers = async (count: number) => {
      const deadline = Date.now() + 10_000;
      while ((received.match(/HTTP\/1\.1 /g) ?? []).length < count || !/[}\n]$/.test(received)) {
        if (Date.now() > deadline) assert.fail(`${count} answers expected, got: ${received}`);
        await sleep(10);
      }
      const text = received;
      received = '';
      return text.split(/(?=HTTP\/1\.1 )/);
    };
    const invoke = (n: number) =>
      `POST /function/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\nContent-Length: 7\r\n\r\n{"n":${n}}`;
    const health = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
    try {
      // Invoke first (served by the gateway's own front), then an operation Express serves.
      socket.write(invoke(1));
      assert.match((await answers(1))[0]!, /^HTTP\/1\.1 200 [^]*"event":\{"n":1\}/);
      socket.write(health);
      assert.match((await answers(1))[0]!, /^HTTP\/1\.1 200 [^]*"status":"ok"/);
      // Pipelined in one write: the answers come back in the order asked.
      socket.write(invoke(2) + health + invoke(3));
      const [second, healthy, third] = await answers(3);
      assert.match(second!, /^HTTP\/1\.1 200 [^]*"event":\{"n":2\}/);
      assert.match(healthy!, /^HTTP\/1\.1 200 [^]*"status":"ok"/);
      assert.match(third!, /^HTTP\/1\.1 200 [^]*"event":\{"n":3\}/);
      // A chunked body after Expect: 100-continue, as streaming clients send one.
      socket.write(
        `POST /function/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\n` +
          'Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n',
      );
      assert.match((await answers(1))[0]!, /^HTTP\/1\.1 100 Continue\r\n\r\n$/);
      socket.write('4\r\n{"n"\r\n3\r\n:4}\r\n0\r\n\r\n');
      assert.match((await answers(1))[0]!, /^HTTP\/1\.1 200 [^]*"event":\{"n":4\}/);
    } finally {
      socket.destroy();
    }
  });

  test('the AWS CLI v2 invokes with real credentials', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hearth-cli-'));
    try {
      const outFile = join(dir, 'out.json');
      const { stdout } = await run(
        '/usr/bin/aws',
        [
          'lambda',
          'invoke',
          '--endpoint-url',
          gateway.url,
          '--function-name',
          'echo',
          '--cli-binary-format',
          'raw-in-base64-out',
          '--payload',
          '{"from":"cli"}',
          outFile,
        ],
        {
          env: {
            PATH: process.env.PATH,
            HOME: dir,
            AWS_ACCESS_KEY_ID: ACCESS_KEY.accessKeyId,
            AWS_SECRET_ACCESS_KEY: ACCESS_KEY.secretAccessKey,
            AWS_DEFAULT_REGION: 'us-east-1',
            AWS_CONFIG_FILE: join(dir, 'config'),
            AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'),
          },
          timeout: 30_000,
        },
      );
      const answer = JSON.parse(stdout);
      assert.equal(answer.StatusCode, 200);
      assert.equal(answer.ExecutedVersion, '$LATEST');
      assert.deepEqual(JSON.parse(await readFile(outFile, 'utf8')).event, { from: 'cli' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('/metrics passes promtool check metrics and counts what happened', async () => {
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    assert.match(text, /hearth_invocations_total\{function="echo",mode="sync",outcome="success"\} \d+/);
    assert.match(text, /hearth_invocations_total\{function="fails",mode="sync",outcome="function_error"\} 2/);
    assert.match(
      text,
      /hearth_throttles_total\{function="blocked",reason="ReservedFunctionConcurrentInvocationLimitExceeded"\} 1/,
    );
    assert.match(text, /hearth_invocation_duration_seconds_bucket\{le="900",function="echo"\}/);
    assert.match(text, /hearth_init_duration_seconds_count\{function="echo"\} 1/);
    assert.match(text, /hearth_instances\{function="echo",state="idle"\} 1/);
    const dir = await mkdtemp(join(tmpdir(), 'hearth-promtool-'));
    try {
      await writeFile(join(dir, 'metrics.txt'), text);
      const { stdout, stderr } = await run('sh', [
        '-c',
        `promtool check metrics < ${join(dir, 'metrics.txt')}`,
      ]).catch((error: { stdout: string; stderr: string }) => {
        assert.fail(`promtool found problems:\n${error.stdout}${error.stderr}`);
      });
      assert.equal(stdout + stderr, '');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
