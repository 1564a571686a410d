import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FunctionResource, FunctionRoute } from '@hearth/api';
import { GatewayError } from '../core/errors.js';
import {
  applyEventInvokeConfig,
  applyReservedConcurrency,
  applyUpdateConfiguration,
  observedState,
  pageOf,
  parseCreateFunction,
  parseDestination,
  removeReservedConcurrency,
  resetEventInvokeConfig,
  toEventInvokeConfig,
  toFunctionConfiguration,
  updateConflict,
} from './mapping.js';

const context = { region: 'eu-west-1', accountId: '123456789012' };
const now = new Date('2026-01-02T03:04:05.678Z');
const zipBase64 = Buffer.from('PK fake zip').toString('base64');
const sha256 = 'ab'.repeat(32);
const archive = { archive: { url: `http://gw/hearth/v1/code/${sha256}.zip`, sha256 } };

function created(extra: Record<string, unknown> = {}): FunctionResource {
  const input = parseCreateFunction({
    FunctionName: 'orders',
    Runtime: 'python3.11',
    Handler: 'app.handler',
    Code: { ZipFile: zipBase64 },
    ...extra,
  });
  return input.build(archive, 1234, now);
}

function rejects(action: () => unknown, code: string, message: RegExp) {
  assert.throws(action, (error: unknown) => {
    assert.ok(error instanceof GatewayError);
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  });
}

test('CreateFunction maps onto a Function spec, with Lambda defaults', () => {
  const resource = created({
    MemorySize: 512,
    Timeout: 30,
    EphemeralStorage: { Size: 1024 },
    Environment: { Variables: { TABLE: 'orders' } },
    Description: 'd',
    Tags: { team: 'a' },
  });
  assert.equal(resource.metadata.name, 'orders');
  assert.equal(resource.spec.runtime, 'python3.11');
  assert.equal(resource.spec.handler, 'app.handler');
  assert.equal(resource.spec.memory, '512Mi');
  assert.equal(resource.spec.timeoutSeconds, 30);
  assert.equal(resource.spec.ephemeralStorage, '1024Mi');
  assert.deepEqual(resource.spec.env, [{ name: 'TABLE', value: 'orders' }]);
  assert.deepEqual(resource.spec.code, archive);
  const defaults = created();
  assert.equal(defaults.spec.memory, '128Mi');
  assert.equal(defaults.spec.timeoutSeconds, 3);
  assert.equal(defaults.spec.ephemeralStorage, '512Mi');
});

test('parameters out of range are refused naming the field and the limit', () => {
  rejects(
    () => created({ MemorySize: 64 }),
    'InvalidParameterValueException',
    /'MemorySize'.*greater than or equal to 128/,
  );
  rejects(
    () => created({ MemorySize: 10241 }),
    'InvalidParameterValueException',
    /'MemorySize'.*less than or equal to 10240/,
  );
  rejects(
    () => created({ Timeout: 0 }),
    'InvalidParameterValueException',
    /'Timeout'.*greater than or equal to 1/,
  );
  rejects(
    () => created({ Timeout: 901 }),
    'InvalidParameterValueException',
    /'Timeout'.*less than or equal to 900/,
  );
  rejects(
    () => created({ EphemeralStorage: { Size: 511 } }),
    'InvalidParameterValueException',
    /'EphemeralStorage.Size'.*512/,
  );
  rejects(
    () => created({ EphemeralStorage: { Size: 10241 } }),
    'InvalidParameterValueException',
    /'EphemeralStorage.Size'.*10240/,
  );
  rejects(() => created({ Runtime: 'java8' }), 'InvalidParameterValueException', /'Runtime'.*nodejs20.x/);
  rejects(
    () => created({ Environment: { Variables: { '1BAD': 'x' } } }),
    'InvalidParameterValueException',
    /'Environment.Variables'/,
  );
  rejects(
    () => created({ Environment: { Variables: { BIG: 'x'.repeat(4100) } } }),
    'InvalidParameterValueException',
    /4KB limit/,
  );
  rejects(
    () => created({ FunctionName: 'Has_Upper' }),
    'InvalidParameterValueException',
    /'FunctionName'.*lower-case/,
  );
  rejects(
    () =>
      parseCreateFunction({ FunctionName: 'x', Runtime: 'nodejs20.x', Code: { S3Bucket: 'b', S3Key: 'k' } }),
    'InvalidParameterValueException',
    /ZipFile/,
  );
});

test('UpdateFunctionConfiguration changes only the fields it carries', () => {
  const before = created({ MemorySize: 256, Environment: { Variables: { A: '1' } } });
  const after = applyUpdateConfiguration(before, { Timeout: 10 }, now);
  assert.equal(after.spec.timeoutSeconds, 10);
  assert.equal(after.spec.memory, '256Mi');
  assert.deepEqual(after.spec.env, [{ name: 'A', value: '1' }]);
  assert.deepEqual(
    applyUpdateConfiguration(before, { Environment: { Variables: {} } }, now).spec.env,
    undefined,
  );
});

test('reserved concurrency must leave 100 of the account unreserved', () => {
  const resource = created();
  assert.equal(
    applyReservedConcurrency(resource, { ReservedConcurrentExecutions: 900 }, 0, 1000, now).spec.concurrency
      .reserved,
    900,
  );
  rejects(
    () => applyReservedConcurrency(resource, { ReservedConcurrentExecutions: 901 }, 0, 1000, now),
    'InvalidParameterValueException',
    /below its minimum value of \[100\]/,
  );
  rejects(
    () => applyReservedConcurrency(resource, { ReservedConcurrentExecutions: 500 }, 450, 1000, now),
    'InvalidParameterValueException',
    /at most 450/,
  );
  assert.equal(
    applyReservedConcurrency(resource, { ReservedConcurrentExecutions: 0 }, 0, 1000, now).spec.concurrency
      .reserved,
    0,
  );
});

test('event invoke config: PUT replaces, POST merges, destinations map both ways', () => {
  const resource = created();
  const put = applyEventInvokeConfig(
    resource,
    {
      MaximumRetryAttempts: 0,
      DestinationConfig: {
        OnFailure: { Destination: 'arn:aws:lambda:eu-west-1:123456789012:function:audit' },
      },
    },
    false,
    now,
  );
  assert.deepEqual(put.spec.async, {
    maxRetryAttempts: 0,
    maxEventAgeSeconds: 21600,
    onFailure: { function: 'audit' },
  });
  const merged = applyEventInvokeConfig(put, { MaximumEventAgeInSeconds: 60 }, true, now);
  assert.deepEqual(merged.spec.async, {
    maxRetryAttempts: 0,
    maxEventAgeSeconds: 60,
    onFailure: { function: 'audit' },
  });
  const replaced = applyEventInvokeConfig(merged, { MaximumEventAgeInSeconds: 120 }, false, now);
  assert.deepEqual(replaced.spec.async, { maxRetryAttempts: 2, maxEventAgeSeconds: 120 });
  const shown = toEventInvokeConfig(put, context);
  assert.equal(
    shown.DestinationConfig.OnFailure.Destination,
    'arn:aws:lambda:eu-west-1:123456789012:function:audit',
  );
  assert.equal(shown.FunctionArn, 'arn:aws:lambda:eu-west-1:123456789012:function:orders:$LATEST');
  rejects(
    () => applyEventInvokeConfig(resource, { MaximumRetryAttempts: 3 }, false, now),
    'InvalidParameterValueException',
    /'MaximumRetryAttempts'.*less than or equal to 2/,
  );
  rejects(
    () => applyEventInvokeConfig(resource, { MaximumEventAgeInSeconds: 59 }, false, now),
    'InvalidParameterValueException',
    /greater than or equal to 60/,
  );
  assert.deepEqual(parseDestination('arn:aws:sqs:eu-west-1:123456789012:failed-orders', 'x'), {
    stream: 'failed-orders',
  });
  assert.deepEqual(parseDestination('https://hooks.example/x', 'x'), { url: 'https://hooks.example/x' });
});

test('State and LastUpdateStatus follow what the controller serves', () => {
  const resource = created();
  const route = (
    spec = resource.spec,
    state: FunctionRoute['state'] = 'Active',
    stateReason?: string,
  ): FunctionRoute => ({
    name: 'orders',
    revision: 'r1',
    spec,
    state,
    lastModified: now.toISOString(),
    ...(stateReason ? { stateReason } : {}),
  });
  assert.deepEqual(
    [observedState(resource.spec, undefined).State, observedState(resource.spec, undefined).LastUpdateStatus],
    ['Pending', 'InProgress'],
  );
  assert.deepEqual(observedState(resource.spec, route()), {
    State: 'Active',
    LastUpdateStatus: 'Successful',
  });
  // The same spec with its keys in another order is the same spec.
  const reordered = JSON.parse(
    JSON.stringify(resource.spec, Object.keys(resource.spec).sort()),
  ) as typeof resource.spec;
  assert.equal(
    observedState(
      {
        ...reordered,
        code: resource.spec.code,
        concurrency: resource.spec.concurrency,
        scaling: resource.spec.scaling,
        async: resource.spec.async,
      },
      route(),
    ).LastUpdateStatus,
    'Successful',
  );
  const updated = applyUpdateConfiguration(resource, { Timeout: 9 }, now);
  assert.deepEqual(
    [observedState(updated.spec, route()).State, observedState(updated.spec, route()).LastUpdateStatus],
    ['Active', 'InProgress'],
  );
  const failed = observedState(
    updated.spec,
    route(updated.spec, 'Failed', 'code archive has sha256 x, but expects y'),
  );
  assert.equal(failed.State, 'Failed');
  assert.equal(failed.LastUpdateStatus, 'Failed');
  assert.match(failed.LastUpdateStatusReason ?? '', /sha256/);
});

test('updates are refused while the function is being created or updated, in Lambda words', () => {
  const resource = created();
  const served = (spec = resource.spec, state: FunctionRoute['state'] = 'Active') => ({
    spec,
    state,
    ...(state === 'Failed' ? { stateReason: 'the handler could not be loaded' } : {}),
  });
  const creating = updateConflict(resource, undefined, context);
  assert.equal(creating?.code, 'ResourceConflictException');
  assert.equal(creating?.status, 409);
  assert.equal(
    creating?.message,
    'The operation cannot be performed at this time. The function is currently in the following state: Pending',
  );
  assert.equal(updateConflict(resource, served(), context), undefined, 'Active and Successful');
  const updated = applyUpdateConfiguration(resource, { Timeout: 9 }, now);
  assert.equal(
    updateConflict(updated, served(), context)?.message,
    'The operation cannot be performed at this time. An update is in progress for resource: arn:aws:lambda:eu-west-1:123456789012:function:orders',
  );
  assert.equal(
    updateConflict(updated, served(updated.spec, 'Failed'), context),
    undefined,
    'a failed update may be fixed by another',
  );
});

test('a new reservation or event invoke config is no update: an update may follow at once', () => {
  const resource = created();
  const served = { spec: resource.spec, state: 'Active' as const };
  const reserved = applyReservedConcurrency(resource, { ReservedConcurrentExecutions: 5 }, 0, 1000, now);
  assert.equal(observedState(reserved.spec, served).LastUpdateStatus, 'Successful');
  assert.equal(updateConflict(reserved, served, context), undefined);
  const unreserved = removeReservedConcurrency(reserved, now);
  assert.equal(updateConflict(unreserved, served, context), undefined);
  const retries = applyEventInvokeConfig(reserved, { MaximumRetryAttempts: 0 }, false, now);
  assert.equal(updateConflict(retries, served, context), undefined);
  assert.equal(updateConflict(resetEventInvokeConfig(retries, now), served, context), undefined);
  // A change of what the instances run still is one.
  const memory = applyUpdateConfiguration(retries, { MemorySize: 256 }, now);
  assert.equal(observedState(memory.spec, served).LastUpdateStatus, 'InProgress');
});

test('ImageConfig maps onto spec.imageConfig and back, for image functions only', () => {
  const image = parseCreateFunction({
    FunctionName: 'resize',
    PackageType: 'Image',
    Code: { ImageUri: 'registry.example/resize:7' },
    ImageConfig: { EntryPoint: ['/app/run'], Command: ['--fast'], WorkingDirectory: '/app' },
  }).build({ image: 'registry.example/resize:7' }, 0, now);
  assert.deepEqual(image.spec.imageConfig, {
    entryPoint: ['/app/run'],
    command: ['--fast'],
    workingDirectory: '/app',
  });
  assert.deepEqual(toFunctionConfiguration(image, undefined, context).ImageConfigResponse, {
    ImageConfig: { EntryPoint: ['/app/run'], Command: ['--fast'], WorkingDirectory: '/app' },
  });

  // UpdateFunctionConfiguration replaces the whole ImageConfig; {} goes back to the defaults.
  const commandOnly = applyUpdateConfiguration(image, { ImageConfig: { Command: ['app.handler'] } }, now);
  assert.deepEqual(commandOnly.spec.imageConfig, { command: ['app.handler'] });
  assert.deepEqual(toFunctionConfiguration(commandOnly, undefined, context).ImageConfigResponse, {
    ImageConfig: { Command: ['app.handler'] },
  });
  const defaults = applyUpdateConfiguration(commandOnly, { ImageConfig: {} }, now);
  assert.equal(defaults.spec.imageConfig, undefined);
  assert.equal('ImageConfigResponse' in toFunctionConfiguration(defaults, undefined, context), false);
  // Other configuration changes leave it alone.
  assert.deepEqual(
    applyUpdateConfiguration(image, { Timeout: 9 }, now).spec.imageConfig,
    image.spec.imageConfig,
  );

  rejects(
    () => created({ ImageConfig: { Command: ['x'] } }),
    'InvalidParameterValueException',
    /ImageConfig is only for functions whose PackageType is Image/,
  );
  rejects(
    () => applyUpdateConfiguration(created(), { ImageConfig: { Command: ['x'] } }, now),
    'InvalidParameterValueException',
    /ImageConfig is only for functions whose PackageType is Image/,
  );
  rejects(
    () => applyUpdateConfiguration(image, { ImageConfig: { EntryPoint: '/app/run' } }, now),
    'InvalidParameterValueException',
    /'ImageConfig.EntryPoint' failed to satisfy constraint: Member must be a list of strings/,
  );
  rejects(
    () => applyUpdateConfiguration(image, { ImageConfig: { WorkingDirectory: 'app' } }, now),
    'InvalidParameterValueException',
    /'ImageConfig.WorkingDirectory'.*absolute path/,
  );
});

test('ImageConfig: the limits Lambda names are refused, each in its words', () => {
  const image = parseCreateFunction({
    FunctionName: 'resize',
    PackageType: 'Image',
    Code: { ImageUri: 'registry.example/resize:7' },
  }).build({ image: 'registry.example/resize:7' }, 0, now);
  const update = (imageConfig: unknown) => () =>
    applyUpdateConfiguration(image, { ImageConfig: imageConfig }, now);
  rejects(update('x'), 'InvalidParameterValueException', /'ImageConfig' failed .*Member must be an object/);
  rejects(
    update({ Command: Array.from({ length: 65 }, () => 'x') }),
    'InvalidParameterValueException',
    /'ImageConfig.Command' failed .*length less than or equal to 64/,
  );
  rejects(
    update({ Command: ['x'.repeat(1025)] }),
    'InvalidParameterValueException',
    /'ImageConfig.Command' failed .*length less than or equal to 1024/,
  );
  rejects(
    update({ EntryPoint: ['/app/run', ''] }),
    'InvalidParameterValueException',
    /'ImageConfig.EntryPoint' failed .*must not hold an empty string/,
  );
  rejects(
    update({ WorkingDirectory: 7 }),
    'InvalidParameterValueException',
    /'ImageConfig.WorkingDirectory' failed .*Member must be a string/,
  );
  rejects(
    update({ WorkingDirectory: `/${'d'.repeat(1000)}` }),
    'InvalidParameterValueException',
    /'ImageConfig.WorkingDirectory' failed .*at most 1000 characters/,
  );
  // At the limits, all is taken.
  const widest = {
    Command: Array.from({ length: 64 }, () => 'x'.repeat(1024)),
    WorkingDirectory: `/${'d'.repeat(999)}`,
  };
  assert.equal(update(widest)().spec.imageConfig?.command?.length, 64);
  assert.equal(update(widest)().spec.imageConfig?.workingDirectory?.length, 1000);
});

test('FunctionConfiguration carries the zip hash in base64, the size and the ARN', () => {
  const configuration = toFunctionConfiguration(created({ MemorySize: 256 }), undefined, context);
  assert.equal(configuration.CodeSha256, Buffer.from(sha256, 'hex').toString('base64'));
  assert.equal(configuration.CodeSize, 1234);
  assert.equal(configuration.FunctionArn, 'arn:aws:lambda:eu-west-1:123456789012:function:orders');
  assert.equal(configuration.MemorySize, 256);
  assert.equal(configuration.LastModified, '2026-01-02T03:04:05.678+0000');
  assert.equal(configuration.State, 'Pending');
});

test('ListFunctions pages by name with an opaque marker', () => {
  const items = ['c', 'a', 'e', 'b', 'd'].map((name) => ({ name }));
  const first = pageOf(items, undefined, '2');
  assert.deepEqual(
    first.page.map((i) => i.name),
    ['a', 'b'],
  );
  const second = pageOf(items, first.nextMarker, '2');
  assert.deepEqual(
    second.page.map((i) => i.name),
    ['c', 'd'],
  );
  const last = pageOf(items, second.nextMarker, '2');
  assert.deepEqual(
    last.page.map((i) => i.name),
    ['e'],
  );
  assert.equal(last.nextMarker, undefined);
  rejects(() => pageOf(items, undefined, '0'), 'InvalidParameterValueException', /'MaxItems'/);
});

test("Lambda Managed Instances' CapacityProviderConfig: calls per instance, in one runtime (Node) or a process each (Python)", () => {
  const arn = 'arn:aws:lambda:eu-west-1:123456789012:capacity-provider:fleet';
  const config = (calls?: number) => ({
    CapacityProviderConfig: {
      LambdaManagedInstancesCapacityProviderConfig: {
        CapacityProviderArn: arn,
        ...(calls === undefined ? {} : { PerExecutionEnvironmentMaxConcurrency: calls }),
      },
    },
  });
  const node = created({ Runtime: 'nodejs20.x', Handler: 'index.handler', ...config(32) });
  assert.deepEqual(node.spec.concurrency, { perInstance: 32, perRuntime: 32 });
  assert.deepEqual(toFunctionConfiguration(node, undefined, context).CapacityProviderConfig, {
    LambdaManagedInstancesCapacityProviderConfig: {
      CapacityProviderArn: arn,
      PerExecutionEnvironmentMaxConcurrency: 32,
    },
  });
  // Python runs a process per concurrent call, as on Lambda; the defaults are Lambda's per vCPU.
  assert.deepEqual(created(config(8)).spec.concurrency, { perInstance: 8, perRuntime: 1 });
  assert.deepEqual(created(config()).spec.concurrency, { perInstance: 16, perRuntime: 1 });
  assert.deepEqual(
    created({ Runtime: 'nodejs22.x', Handler: 'index.handler', ...config() }).spec.concurrency,
    { perInstance: 64, perRuntime: 64 },
  );
  // Reserved concurrency set before stays; a function without the config gives none back.
  const reserved = applyReservedConcurrency(created(), { ReservedConcurrentExecutions: 5 }, 0, 1000, now);
  assert.equal(applyUpdateConfiguration(reserved, config(4), now).spec.concurrency.reserved, 5);
  assert.equal(toFunctionConfiguration(created(), undefined, context).CapacityProviderConfig, undefined);
  rejects(
    () => created(config(65)),
    'InvalidParameterValueException',
    /PerExecutionEnvironmentMaxConcurrency.*less than or equal to 64/,
  );
  rejects(
    () => created({ CapacityProviderConfig: { LambdaManagedInstancesCapacityProviderConfig: {} } }),
    'InvalidParameterValueException',
    /CapacityProviderArn is required/,
  );
});
