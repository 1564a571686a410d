import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvokeCommand, LambdaClient, LambdaServiceException } from '@aws-sdk/client-lambda';
import { startRedis, type RedisServer } from '../harness/index.js';
import { ACCESS_KEY, API_KEY, GatewayFixture, type RunningGateway } from './fixture.js';

/** Temporary credentials, as STS hands them out: a key pair that is only valid with its token. */
const TEMPORARY = {
  accessKeyId: 'ASIAHEARTHTEST',
  secretAccessKey: 'hearth-temporary-secret',
  sessionToken: 'IQoJb3JpZ2luX2VjEHearth/Session+Token==',
};

describe('SigV4 with session tokens (temporary credentials) through a real gateway', () => {
  let redis: RedisServer;
  let fixture: GatewayFixture;
  let gateway: RunningGateway;

  before(async () => {
    redis = await startRedis();
    fixture = new GatewayFixture(redis.url);
    const echo = await fixture.addFunction({
      name: 'echo',
      source: 'export const handler = async (event) => ({ event });',
    });
    await fixture.addInstance(echo);
    gateway = await fixture.startGateway({
      HEARTH_ACCESS_KEYS: [ACCESS_KEY, TEMPORARY]
        .map((k) => `${k.accessKeyId}:${k.secretAccessKey}`)
        .join(','),
      HEARTH_SESSION_TOKENS: `${TEMPORARY.accessKeyId}:${TEMPORARY.sessionToken}`,
      HEARTH_API_KEYS: API_KEY,
    });
  });

  after(async () => {
    await fixture?.stop();
    await redis?.stop();
  });

  const invokeWith = async (credentials: {
    accessKeyId: string;
    secretAccessKey: string;
    sessionToken?: string;
  }) => {
    const lambda = new LambdaClient({
      endpoint: gateway.url,
      region: 'us-east-1',
      credentials,
      maxAttempts: 1,
    });
    try {
      return await lambda.send(new InvokeCommand({ FunctionName: 'echo', Payload: Buffer.from('{"n":1}') }));
    } finally {
      lambda.destroy();
    }
  };

  /** The SDK's typed service error for a refused call, with its status and Lambda error type. */
  const refusal = async (credentials: Parameters<typeof invokeWith>[0]) => {
    try {
      await invokeWith(credentials);
    } catch (error) {
      assert.ok(error instanceof LambdaServiceException, `not an SDK service error: ${String(error)}`);
      return `${error.$metadata.httpStatusCode} ${error.name}`;
    }
    return 'accepted';
  };

  test('the AWS SDK v3 with the right session token invokes', async () => {
    const answer = await invokeWith(TEMPORARY);
    assert.equal(answer.StatusCode, 200);
    assert.deepEqual(JSON.parse(Buffer.from(answer.Payload!).toString()), { event: { n: 1 } });
  });

  test('a wrong, missing or unexpected session token is a 403 UnrecognizedClientException', async () => {
    assert.equal(
      await refusal({ ...TEMPORARY, sessionToken: `${TEMPORARY.sessionToken}x` }),
      '403 UnrecognizedClientException',
    );
    const { sessionToken: _dropped, ...withoutToken } = TEMPORARY;
    assert.equal(await refusal(withoutToken), '403 UnrecognizedClientException');
    assert.equal(
      await refusal({ ...ACCESS_KEY, sessionToken: TEMPORARY.sessionToken }),
      '403 UnrecognizedClientException',
      'a long-term key takes no token',
    );
    assert.equal((await invokeWith(ACCESS_KEY)).StatusCode, 200, 'long-term keys work beside temporary ones');
  });

  test('the AWS CLI v2 with AWS_SESSION_TOKEN invokes, and is refused with another token', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hearth-cli-'));
    const cli = (sessionToken: string) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
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
            join(dir, 'out.json'),
          ],
          {
            env: {
              PATH: process.env.PATH,
              HOME: dir,
              AWS_ACCESS_KEY_ID: TEMPORARY.accessKeyId,
              AWS_SECRET_ACCESS_KEY: TEMPORARY.secretAccessKey,
              AWS_SESSION_TOKEN: sessionToken,
              AWS_DEFAULT_REGION: 'us-east-1',
              AWS_MAX_ATTEMPTS: '1',
              AWS_CONFIG_FILE: join(dir, 'config'),
              AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'),
            },
            timeout: 30_000,
          },
          (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
        );
      });
    try {
      const signed = await cli(TEMPORARY.sessionToken);
      assert.equal(signed.code, 0, signed.stderr);
      assert.equal(JSON.parse(signed.stdout).StatusCode, 200);
      assert.deepEqual(JSON.parse(await readFile(join(dir, 'out.json'), 'utf8')), { event: { from: 'cli' } });

      const wrong = await cli('not-the-session-token');
      assert.notEqual(wrong.code, 0);
      assert.match(wrong.stderr, /UnrecognizedClientException/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
