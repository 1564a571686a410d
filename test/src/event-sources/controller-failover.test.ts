/**
 * Redis Streams mappings run by the real controller program (process backend, as `hearth dev` runs
 * it), killed with SIGKILL mid-batch: a new controller, or the other of two, resumes without
 * skipping a record, and counts what it hands out again. Real Redis, gateway and runtime shims.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RedisKeys, type EventSourceMappingStatus } from '@hearth/api';
import { startRedis } from '../harness/index.js';
import { API_KEY, GatewayFixture } from '../gateway/fixture.js';
import { leaseHolder, startController, type ControllerProcess } from './controller-process.js';
import { reportingHandler, startRecorder, type HandlerReport, type Recorder } from './stream-fixture.js';

interface Setup {
  fixture: GatewayFixture;
  recorder: Recorder;
  start(name: string): Promise<ControllerProcess>;
}

/** Redis, a gateway, a recorder, and a functions directory with `manifests`; all gone after the test. */
async function setUp(
  t: TestContext,
  manifests: (recorderUrl: string) => Record<string, string>,
): Promise<Setup> {
  const redis = await startRedis();
  const fixture = new GatewayFixture(redis.url);
  const recorder = await startRecorder();
  const dir = await mkdtemp(join(tmpdir(), 'hearth-failover-'));
  const controllers: ControllerProcess[] = [];
  t.after(async () => {
    for (const controller of controllers) await controller.process.stop('SIGTERM', 5000);
    await fixture.stop();
    await recorder.close();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });
  for (const [file, text] of Object.entries(manifests(recorder.url))) await writeFile(join(dir, file), text);
  const gateway = await fixture.startGateway();
  return {
    fixture,
    recorder,
    async start(name) {
      const controller = await startController(name, {
        HEARTH_REDIS_URL: redis.url,
        HEARTH_FUNCTIONS_DIR: dir,
        HEARTH_GATEWAY_URL: gateway.url,
        HEARTH_GATEWAY_TOKEN: API_KEY,
        HEARTH_EVENT_SOURCE_RETRY_BASE_MS: '50',
      });
      controllers.push(controller);
      return controller;
    },
  };
}

/** A Function `collector` running `handler`, and a Redis Streams mapping `orders` invoking it. */
function collector(handler: string, mapping: string) {
  return (recorderUrl: string) => ({
    'collector.json': JSON.stringify({
      apiVersion: 'hearth.dev/v1alpha1',
      kind: 'Function',
      metadata: { name: 'collector' },
      spec: {
        runtime: 'nodejs20.x',
        code: { inline: { files: { 'index.mjs': handler } } },
        env: [{ name: 'RECORDER', value: recorderUrl }],
        timeoutSeconds: 30,
      },
    }),
    'orders.yaml': `apiVersion: hearth.dev/v1alpha1
kind: EventSourceMapping
metadata: { name: orders }
spec:
  functionName: collector
  startingPosition: TRIM_HORIZON
  source: { redisStream: { stream: orders } }
${mapping}`,
  });
}

const labelsOf = (report: HandlerReport) => report.records.map((r) => Number(JSON.parse(r.data).n));
const GROUP = 'hearth-orders';
const pendingCount = async (fixture: GatewayFixture) =>
  ((await fixture.redis.xpending('orders', GROUP)) as [number, ...unknown[]])[0];

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

test('a controller killed mid-batch: the next one resumes from the first unacknowledged record, re-sends what was in flight, and counts it', async (t) => {
  const setup = await setUp(
    t,
    collector(
      reportingHandler(`
        await report();
        // Long enough for the test to kill the controller while this batch is in flight.
        if (records.some((r) => JSON.parse(r.data).slow)) await new Promise((resolve) => setTimeout(resolve, 2000));
        return null;`),
      '  batchSize: 10\n',
    ),
  );
  const { fixture, recorder } = setup;
  const ids: string[] = [];
  for (let n = 1; n <= 30; n++)
    ids.push(
      (await fixture.redis.xadd('orders', '*', 'n', String(n), ...(n === 15 ? ['slow', 'yes'] : [])))!,
    );

  const first = await setup.start('controller-1');
  await recorder.waitFor(
    (reports) => reports.some((r) => labelsOf(r).includes(15)),
    60_000,
    'the slow batch',
  );
  const shims = first.children();
  assert.ok(shims.length > 0, 'the controller runs the function in shims of its own');
  await first.process.stop('SIGKILL');
  // Its shims end with it, as a pod's containers end with the pod.
  await until(
    async () => shims.every((pid) => !existsSync(`/proc/${pid}`)),
    "the killed controller's shims to end",
  );
  const pendingAtKill = await pendingCount(fixture);
  // At least the batch in flight; records read ahead but not sent are pending too.
  assert.ok(pendingAtKill >= 10, `pending after the kill: ${pendingAtKill}`);
  const reportsBeforeRestart = recorder.reports.length;

  const second = await setup.start('controller-2');
  await until(async () => (await pendingCount(fixture)) === 0, 'every record acknowledged');
  const seen = recorder.reports.flatMap(labelsOf);
  for (let n = 1; n <= 30; n++) assert.ok(seen.includes(n), `record ${n} was never delivered`);
  // After the restart records come in stream order, from the first one never acknowledged.
  const afterRestart = recorder.reports.slice(reportsBeforeRestart).flatMap(labelsOf);
  assert.deepEqual(
    afterRestart,
    Array.from({ length: afterRestart.length }, (_, i) => 31 - afterRestart.length + i),
  );
  assert.ok(afterRestart.length >= pendingAtKill, 'what was pending is handed out again, first');
  // The handler saw the batch in flight twice; the new controller counts every record it re-read.
  const twice = [...new Set(seen)].filter((n) => seen.filter((m) => m === n).length > 1);
  assert.ok(twice.includes(15), `duplicates seen by the handler: ${twice.join(',')}`);
  assert.ok(twice.length <= pendingAtKill);
  const labels = { mapping: 'orders' };
  assert.equal(await second.metric('hearth_event_source_redelivered_records_total', labels), pendingAtKill);
  await until(async () => {
    const json = await fixture.redis.hget(RedisKeys.mappingStatus, 'orders');
    return (JSON.parse(json ?? '{}') as EventSourceMappingStatus).lastProcessedPosition === ids[29];
  }, 'the checkpoint at the last record in status');
});

test('two controllers: one reads the stream, in order per key; killed, the other takes over without skipping', async (t) => {
  const keys = ['k1', 'k2', 'k3', 'k4'];
  const setup = await setUp(
    t,
    collector(
      reportingHandler(`
        await report();
        await new Promise((resolve) => setTimeout(resolve, 50));
        return null;`),
      '  batchSize: 5\n  parallelizationFactor: 2\n',
    ),
  );
  const { fixture, recorder } = setup;
  let added = 0;
  const addRound = async () => {
    added++;
    for (const key of keys) await fixture.redis.xadd('orders', '*', 'partitionKey', key, 'n', String(added));
  };
  const [a, b] = await Promise.all([setup.start('controller-a'), setup.start('controller-b')]);
  const running = await leaseHolder(fixture.redis, [a!, b!]);
  const standby = running === a ? b! : a!;

  for (let round = 0; round < 10; round++) await addRound();
  await recorder.waitFor((reports) => reports.flatMap(labelsOf).length >= 16, 60_000, 'records flowing');
  // Only one controller has read the stream: two readers would interleave each key's records.
  assert.equal(await standby.metric('hearth_event_source_records_read_total', { mapping: 'orders' }), 0);
  await running.process.stop('SIGKILL');
  for (let round = 0; round < 10; round++) await addRound();

  const total = added * keys.length;
  await until(
    async () =>
      (await pendingCount(fixture)) === 0 &&
      new Set(recorder.reports.flatMap((r) => r.records.map((x) => x.seq))).size === total,
    `all ${total} records delivered and acknowledged`,
  );
  for (const key of keys) {
    // What the function saw of this key, in the order it saw it.
    const seen = recorder.reports.flatMap((r) =>
      r.records.filter((x) => x.key === key).map((x) => Number(JSON.parse(x.data).n)),
    );
    assert.deepEqual(
      [...new Set(seen)].sort((x, y) => x - y),
      Array.from({ length: added }, (_, i) => i + 1),
      `${key}: every record`,
    );
    // In order, but for one step back at the takeover (what was in flight, sent again).
    const stepsBack = seen.filter((n, i) => i > 0 && n <= seen[i - 1]!).length;
    assert.ok(stepsBack <= 1, `${key} in order but for the takeover: ${seen.join(',')}`);
  }
  assert.ok(standby.alive());
  const duplicates = recorder.reports.flatMap((r) => r.records).length - total;
  const redelivered = await standby.metric('hearth_event_source_redelivered_records_total', {
    mapping: 'orders',
  });
  assert.ok(redelivered >= duplicates, `re-sent ${duplicates}, counted ${redelivered}`);
});
