import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateEventSourceMappingCommand,
  DeleteEventSourceMappingCommand,
  GetEventSourceMappingCommand,
  InvalidParameterValueException,
  LambdaClient,
  ListEventSourceMappingsCommand,
  ResourceConflictException,
  ResourceNotFoundException,
  UpdateEventSourceMappingCommand,
  type EventSourceMappingConfiguration,
} from '@aws-sdk/client-lambda';
import { startHearthDev, type HearthDev } from './hearth-dev.js';
import { KUBE_MISSING, kubeBinaries, startControlPlane, type ControlPlane } from '../harness/kube.js';
import { startRedis, type RedisServer } from '../harness/redis.js';
import { ACCESS_KEY, GatewayFixture, type RunningGateway } from '../gateway/fixture.js';

const STREAM_ARN = 'arn:hearth:redis:us-east-1:000000000000:stream/orders';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const CONSUMER = `apiVersion: hearth.dev/v1alpha1
kind: Function
metadata: { name: consumer }
spec:
  runtime: nodejs20.x
  handler: index.handler
  code: { inline: { files: { index.mjs: "export const handler = async () => ({ batchItemFailures: [] })" } } }
---
apiVersion: hearth.dev/v1alpha1
kind: EventSourceMapping
metadata: { name: by-hand }
spec:
  functionName: consumer
  source: { schedule: { expression: "rate(1 day)" } }
`;

describe('the EventSourceMapping API with the AWS SDK v3 against hearth dev', () => {
  let dev: HearthDev;
  let lambda: LambdaClient;

  before(async () => {
    dev = await startHearthDev();
    await writeFile(join(dev.dir, 'consumer.yaml'), CONSUMER);
    lambda = new LambdaClient({
      endpoint: dev.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      maxAttempts: 1,
    });
  });
  after(async () => {
    lambda?.destroy();
    await dev?.stop();
  });

  test('create a Redis-stream mapping, get it until the controller runs it, list by function, update, delete', async () => {
    const created = await lambda.send(
      new CreateEventSourceMappingCommand({
        FunctionName: 'consumer',
        EventSourceArn: STREAM_ARN,
        BatchSize: 10,
        StartingPosition: 'TRIM_HORIZON',
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        DestinationConfig: { OnFailure: { Destination: 'arn:aws:sqs:us-east-1:000000000000:orders-failed' } },
      }),
    );
    assert.equal(created.$metadata.httpStatusCode, 202);
    assert.match(created.UUID ?? '', UUID);
    assert.equal(created.EventSourceArn, STREAM_ARN);
    assert.equal(created.FunctionArn, 'arn:aws:lambda:us-east-1:000000000000:function:consumer');
    assert.equal(created.State, 'Creating');
    assert.equal(created.BatchSize, 10);
    assert.equal(created.StartingPosition, 'TRIM_HORIZON');
    assert.deepEqual(created.FunctionResponseTypes, ['ReportBatchItemFailures']);
    assert.equal(
      created.DestinationConfig?.OnFailure?.Destination,
      'arn:aws:sqs:us-east-1:000000000000:orders-failed',
    );
    assert.ok(
      created.LastModified instanceof Date && Math.abs(created.LastModified.getTime() - Date.now()) < 60_000,
    );
    const uuid = created.UUID!;
    const manifest = await readFile(join(dev.dir, `eventsourcemapping-${uuid}.yaml`), 'utf8');
    assert.match(manifest, /kind: EventSourceMapping/);
    assert.match(manifest, /stream: orders/);

    // The process controller picks the manifest up and reports through Redis.
    let got: EventSourceMappingConfiguration = created;
    const deadline = Date.now() + 30_000;
    while (got.State === 'Creating' && Date.now() < deadline) {
      await sleep(250);
      got = await lambda.send(new GetEventSourceMappingCommand({ UUID: uuid }));
    }
    assert.equal(got.State, 'Enabled', `state reason: ${got.StateTransitionReason}`);
    assert.equal(got.UUID, uuid);

    const listed = await lambda.send(new ListEventSourceMappingsCommand({ FunctionName: 'consumer' }));
    assert.deepEqual(
      listed.EventSourceMappings?.map((m) => m.UUID).sort(),
      [uuid, 'by-hand'].sort(),
      'the API lists mappings declared by hand too',
    );
    const byArn = await lambda.send(new ListEventSourceMappingsCommand({ EventSourceArn: STREAM_ARN }));
    assert.deepEqual(
      byArn.EventSourceMappings?.map((m) => m.UUID),
      [uuid],
    );
    const none = await lambda.send(new ListEventSourceMappingsCommand({ FunctionName: 'someone-else' }));
    assert.deepEqual(none.EventSourceMappings, []);
    const paged = await lambda.send(new ListEventSourceMappingsCommand({ MaxItems: 1 }));
    assert.equal(paged.EventSourceMappings?.length, 1);
    assert.ok(paged.NextMarker);

    const updated = await lambda.send(new UpdateEventSourceMappingCommand({ UUID: uuid, BatchSize: 50 }));
    assert.equal(updated.BatchSize, 50);
    assert.equal((await lambda.send(new GetEventSourceMappingCommand({ UUID: uuid }))).BatchSize, 50);
    assert.match(await readFile(join(dev.dir, `eventsourcemapping-${uuid}.yaml`), 'utf8'), /batchSize: 50/);

    const deleted = await lambda.send(new DeleteEventSourceMappingCommand({ UUID: uuid }));
    assert.equal(deleted.State, 'Deleting');
    await assert.rejects(
      lambda.send(new GetEventSourceMappingCommand({ UUID: uuid })),
      (error: unknown) => error instanceof ResourceNotFoundException,
    );
  });

  test('bad input is InvalidParameterValueException naming the field; unknown function 404; a hand-written mapping is read-only', async () => {
    const refused = async (
      input: ConstructorParameters<typeof CreateEventSourceMappingCommand>[0],
      field: RegExp,
    ) => {
      await assert.rejects(lambda.send(new CreateEventSourceMappingCommand(input)), (error: unknown) => {
        assert.ok(error instanceof InvalidParameterValueException, String(error));
        assert.match(error.message, field);
        return true;
      });
    };
    await refused(
      { FunctionName: 'consumer', EventSourceArn: STREAM_ARN, BatchSize: 0 },
      /at 'batchSize'.*greater than or equal to 1/,
    );
    await refused(
      { FunctionName: 'consumer', EventSourceArn: STREAM_ARN, ParallelizationFactor: 11 },
      /parallelizationFactor/,
    );
    await refused(
      { FunctionName: 'consumer', EventSourceArn: 'arn:hearth:nats:us-east-1:000000000000:stream/orders' },
      /EventSourceArn .*NATS.*URL/,
    );
    await refused(
      { FunctionName: 'consumer', EventSourceArn: 'arn:aws:kinesis:us-east-1:000000000000:stream/orders' },
      /EventSourceArn .*kinesis is not an event source/,
    );
    await refused(
      { FunctionName: 'consumer', EventSourceArn: STREAM_ARN, StartingPosition: 'AT_TIMESTAMP' },
      /StartingPositionTimestamp/,
    );
    await refused(
      { FunctionName: 'consumer', EventSourceArn: STREAM_ARN, Queues: ['q'] },
      /Queues is not supported/,
    );
    await assert.rejects(
      lambda.send(
        new CreateEventSourceMappingCommand({ FunctionName: 'missing', EventSourceArn: STREAM_ARN }),
      ),
      (error: unknown) =>
        error instanceof ResourceNotFoundException && /function:missing/.test(error.message),
    );
    await assert.rejects(
      lambda.send(new UpdateEventSourceMappingCommand({ UUID: 'by-hand', BatchSize: 5 })),
      (error: unknown) => error instanceof ResourceConflictException && /consumer\.yaml/.test(error.message),
    );
  });
});

const CRDS = ['function.yaml', 'eventsourcemapping.yaml'].map((file) =>
  fileURLToPath(new URL(`../../../charts/hearth/crds/${file}`, import.meta.url)),
);

describe(
  'the EventSourceMapping API on Kubernetes: EventSourceMapping resources on a real kube-apiserver',
  { skip: kubeBinaries() ? false : KUBE_MISSING },
  () => {
    let cp: ControlPlane;
    let redis: RedisServer;
    let fixture: GatewayFixture;
    let gateway: RunningGateway;
    let codeStore: string;
    let lambda: LambdaClient;

    before(async () => {
      [cp, redis, codeStore] = await Promise.all([
        startControlPlane({ crds: CRDS }),
        startRedis(),
        mkdtemp(join(tmpdir(), 'hearth-esm-code-')),
      ]);
      fixture = new GatewayFixture(redis.url);
      gateway = await fixture.startGateway({
        HEARTH_MANAGEMENT_BACKEND: 'kubernetes',
        HEARTH_NAMESPACE: 'default',
        HEARTH_CODE_STORE_DIR: codeStore,
        KUBECONFIG: cp.kubeconfig,
      });
      await cp.kubectl(['apply', '-f', '-'], CONSUMER.split('---')[0]);
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
      await Promise.all([cp?.stop(), redis?.stop()]);
      if (codeStore) await rm(codeStore, { recursive: true, force: true });
    });

    test('create writes a resource the CRD accepts; state follows its status; update and delete change the resource', async () => {
      const created = await lambda.send(
        new CreateEventSourceMappingCommand({
          FunctionName: 'consumer',
          EventSourceArn: STREAM_ARN,
          BatchSize: 25,
        }),
      );
      const uuid = created.UUID!;
      assert.match(uuid, UUID);
      assert.equal(created.State, 'Creating');
      const stored = JSON.parse(await cp.kubectl(['get', 'esm', uuid, '-o', 'json'])) as {
        metadata: { generation: number };
        spec: { functionName: string; batchSize: number; source: unknown };
      };
      assert.deepEqual([stored.spec.functionName, stored.spec.batchSize], ['consumer', 25]);
      assert.deepEqual(stored.spec.source, { redisStream: { stream: 'orders' } });

      // What the controller would write: the state for the generation it saw.
      const status = (state: string, generation: number) =>
        cp.kubectl([
          'patch',
          'esm',
          uuid,
          '--subresource=status',
          '--type=merge',
          '-p',
          JSON.stringify({ status: { state, observedGeneration: generation, lastProcessingResult: 'OK' } }),
        ]);
      await status('Enabled', stored.metadata.generation);
      const enabled = await lambda.send(new GetEventSourceMappingCommand({ UUID: uuid }));
      assert.equal(enabled.State, 'Enabled');
      assert.equal(enabled.LastProcessingResult, 'OK');

      const updated = await lambda.send(new UpdateEventSourceMappingCommand({ UUID: uuid, BatchSize: 40 }));
      assert.equal(updated.BatchSize, 40);
      assert.equal(updated.State, 'Updating');
      const behind = await lambda.send(new GetEventSourceMappingCommand({ UUID: uuid }));
      assert.equal(behind.State, 'Updating', 'the controller has not seen the new generation yet');
      await status('Enabled', stored.metadata.generation + 1);
      assert.equal((await lambda.send(new GetEventSourceMappingCommand({ UUID: uuid }))).State, 'Enabled');
      assert.equal(
        JSON.parse(await cp.kubectl(['get', 'esm', uuid, '-o', 'jsonpath={.spec.batchSize}'])),
        40,
      );

      const listed = await lambda.send(new ListEventSourceMappingsCommand({ FunctionName: 'consumer' }));
      assert.deepEqual(
        listed.EventSourceMappings?.map((m) => m.UUID),
        [uuid],
      );

      await lambda.send(new DeleteEventSourceMappingCommand({ UUID: uuid }));
      await assert.rejects(cp.kubectl(['get', 'esm', uuid]), /NotFound/);
    });
  },
);
