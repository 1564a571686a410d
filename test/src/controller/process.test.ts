import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import {
  RedisKeys,
  ShimHeaders,
  type DemandReport,
  type FunctionRoute,
  type InstanceEndpoint,
} from '@hearth/api';
import { startProcessController, type ProcessController } from '@hearth/controller';
import { isAlive, startRedis, type RedisServer } from '../harness/index.js';

/** A function whose answer says which code and which process served it; `sleep` holds the call. */
function manifest(name: string, version: string, scaling: Record<string, number>): string {
  const code = `export const handler = async (event) => {
    if (event.sleep) await new Promise((r) => setTimeout(r, event.sleep));
    return { version: ${JSON.stringify(version)}, pid: process.pid, event };
  };`;
  return JSON.stringify({
    apiVersion: 'hearth.dev/v1alpha1',
    kind: 'Function',
    metadata: { name },
    spec: { runtime: 'nodejs20.x', code: { inline: { files: { 'index.mjs': code } } }, scaling },
  });
}

interface World {
  redis: RedisServer;
  client: Redis;
  dir: string;
  controller: ProcessController;
  output: string[];
}

async function world(files: Record<string, string>): Promise<World> {
  const redis = await startRedis();
  const client = new Redis(redis.url);
  const dir = await mkdtemp(join(tmpdir(), 'hearth-fns-'));
  for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
  const output: string[] = [];
  const controller = await startProcessController({
    redisUrl: redis.url,
    functionsDir: dir,
    isolation: 'portable',
    logger: pino({ level: process.env.HEARTH_TEST_LOGS === '1' ? 'debug' : 'silent' }),
    instanceOutput: (fn, id, text) => output.push(`[${fn} ${id}] ${text}`),
    scanIntervalMs: 500,
  });
  return { redis, client, dir, controller, output };
}

async function teardown(w: World) {
  await w.controller.stop();
  w.client.disconnect();
  await w.redis.stop();
  await rm(w.dir, { recursive: true, force: true });
}

async function route(w: World, name: string): Promise<FunctionRoute | undefined> {
  const json = await w.client.get(RedisKeys.function(name));
  return json ? (JSON.parse(json) as FunctionRoute) : undefined;
}

async function instances(w: World, name: string): Promise<InstanceEndpoint[]> {
  return Object.values(await w.client.hgetall(RedisKeys.instances(name))).map(
    (j) => JSON.parse(j) as InstanceEndpoint,
  );
}

async function until<T>(
  what: string,
  w: World,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}\n${w.output.join('').slice(-3000)}`);
    await sleep(25);
  }
}

/** Plays a gateway: reports demand for a function about once a second, as gateways do. */
function gateway(w: World, name: string) {
  let report = { inFlight: 0, waiting: 0 };
  const write = async () => {
    const body: DemandReport = { gateway: 'test-gateway', ...report, at: Date.now() };
    await w.client.hset(RedisKeys.demand(name), 'test-gateway', JSON.stringify(body));
  };
  const timer = setInterval(() => void write(), 500);
  return {
    async demand(inFlight: number, waiting: number) {
      report = { inFlight, waiting };
      await write();
      if (waiting > 0) await w.client.publish(RedisKeys.demandChannel, name);
    },
    stop: () => clearInterval(timer),
  };
}

async function invoke(
  url: string,
  event: unknown,
): Promise<{ status: number; body: { version: string; pid: number } }> {
  const response = await fetch(`${url}/invoke`, {
    method: 'POST',
    headers: {
      [ShimHeaders.requestId]: crypto.randomUUID(),
      [ShimHeaders.deadlineMs]: String(Date.now() + 10_000),
    },
    body: JSON.stringify(event),
  });
  return { status: response.status, body: (await response.json()) as { version: string; pid: number } };
}

test('a function goes from zero to serving on demand, scales up, and back to zero after idleSeconds', async () => {
  const w = await world({ 'echo.json': manifest('echo', 'v1', { minWarm: 0, idleSeconds: 2 }) });
  const gw = gateway(w, 'echo');
  try {
    const active = await until('the route', w, async () => {
      const r = await route(w, 'echo');
      return r?.state === 'Active' && r;
    });
    assert.match(active.revision, /^[0-9a-f]{10}$/);
    assert.equal(active.spec.memory, '128Mi', 'the route carries the defaulted spec');
    assert.deepEqual(await instances(w, 'echo'), [], 'minWarm 0: no instance before the first call');

    // A call waits at the gateway: the controller hears of it on the demand channel.
    const signalled = Date.now();
    await gw.demand(0, 1);
    await until('an instance registered', w, async () => (await instances(w, 'echo')).length === 1, 5000);
    assert.ok(
      Date.now() - signalled < 1000,
      `an instance was started ${Date.now() - signalled} ms after the signal`,
    );
    const [first] = await until('a ready instance', w, async () => {
      const list = await instances(w, 'echo');
      return list.some((i) => i.ready) && list;
    });
    assert.equal(first!.revision, active.revision);
    assert.match(first!.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const answer = await invoke(first!.url, { hello: 'world' });
    assert.equal(answer.status, 200);
    assert.equal(answer.body.version, 'v1');

    await gw.demand(1, 2);
    const three = await until('three ready instances', w, async () => {
      const list = await instances(w, 'echo');
      return list.filter((i) => i.ready && !i.draining).length === 3 && list;
    });
    const pids = await Promise.all(three.map(async (i) => (await invoke(i.url, {})).body.pid));
    assert.equal(new Set(pids).size, 3, 'three separate processes');

    // Demand drops: the pool holds for idleSeconds (2 s), then goes to zero.
    await gw.demand(0, 0);
    const quiet = Date.now();
    await sleep(1000);
    assert.equal((await instances(w, 'echo')).length, 3, 'nothing goes before idleSeconds');
    await until('no instances', w, async () => (await instances(w, 'echo')).length === 0, 8000);
    const idleFor = Date.now() - quiet;
    assert.ok(idleFor >= 1900, `scaled down after ${idleFor} ms`);
    await until('the processes gone', w, async () => pids.every((pid) => !isAlive(pid)), 5000);
    assert.equal((await route(w, 'echo'))?.state, 'Active', 'an idle function stays invocable');
  } finally {
    gw.stop();
    await teardown(w);
  }
});

test('a code change rolls in a new revision; the old instance finishes its call in flight, then goes', async () => {
  const w = await world({ 'fn.json': manifest('roll', 'v1', { minWarm: 1 }) });
  try {
    const [old] = await until('a ready v1 instance', w, async () => {
      const list = await instances(w, 'roll');
      return list.some((i) => i.ready) && list;
    });
    const v1 = (await route(w, 'roll'))!.revision;
    assert.equal(old!.revision, v1);
    const oldPid = (await invoke(old!.url, {})).body.pid;
    const inFlight = invoke(old!.url, { sleep: 1500 });
    await sleep(100);

    await writeFile(join(w.dir, 'fn.json'), manifest('roll', 'v2', { minWarm: 1 }));
    const next = await until('the route on a new revision', w, async () => {
      const r = await route(w, 'roll');
      return r && r.revision !== v1 && r;
    });
    const list = await instances(w, 'roll');
    assert.ok(
      list.some((i) => i.revision === next.revision && i.ready),
      'the route moved only once the new revision had a ready instance',
    );
    const served = await inFlight;
    assert.equal(served.status, 200, 'the call in flight on the old instance completed');
    assert.equal(served.body.version, 'v1');
    await until('only the new revision registered', w, async () => {
      const now = await instances(w, 'roll');
      return now.length === 1 && now[0]!.revision === next.revision && now[0]!.ready;
    });
    await until('the old process gone', w, async () => !isAlive(oldPid), 5000);
    const fresh = (await instances(w, 'roll'))[0]!;
    assert.equal((await invoke(fresh.url, {})).body.version, 'v2');
  } finally {
    await teardown(w);
  }
});

test('a bad manifest is reported naming the field and never stops the good ones; a removed manifest unregisters', async () => {
  const bad = JSON.stringify({
    apiVersion: 'hearth.dev/v1alpha1',
    kind: 'Function',
    metadata: { name: 'huge' },
    spec: { runtime: 'nodejs20.x', memory: '64Gi', code: { inline: { files: { 'index.mjs': '' } } } },
  });
  const w = await world({ 'good.json': manifest('good', 'v1', { minWarm: 1 }), 'bad.json': bad });
  try {
    assert.deepEqual(
      w.controller.problems().map((p) => [p.file, p.name, p.path]),
      [['bad.json', 'huge', 'spec.memory']],
    );
    assert.match(w.controller.problems()[0]!.message, /between 128Mi and 10Gi/);
    await until('the good function ready', w, async () => (await instances(w, 'good')).some((i) => i.ready));
    assert.equal(await route(w, 'huge'), undefined);

    await rm(join(w.dir, 'good.json'));
    await until('the route removed', w, async () => !(await route(w, 'good')), 5000);
    await until('the instances removed', w, async () => (await instances(w, 'good')).length === 0, 5000);
    assert.deepEqual(await w.client.smembers(RedisKeys.functions), []);
  } finally {
    await teardown(w);
  }
});

// NODE_OPTIONS is a common Lambda setting (a tracer loaded with --require). It is the function's:
// the shim, a Node process too, must not load the file (here it would throw).
test("a function's NODE_OPTIONS reaches its runtime, not the shim's own Node", async () => {
  const files = {
    'pre.cjs': `if (process.argv[1].endsWith('main.cjs')) throw new Error('loaded into the shim');
globalThis.preloaded = true;`,
    'index.mjs': `export const handler = async () => ({ preloaded: globalThis.preloaded === true, version: 'v1', pid: process.pid });`,
  };
  const fn = {
    apiVersion: 'hearth.dev/v1alpha1',
    kind: 'Function',
    metadata: { name: 'traced' },
    spec: {
      runtime: 'nodejs20.x',
      code: { inline: { files } },
      env: [{ name: 'NODE_OPTIONS', value: '--require ./pre.cjs' }],
      scaling: { minWarm: 1 },
    },
  };
  const w = await world({ 'traced.json': JSON.stringify(fn) });
  try {
    const [instance] = await until('a ready instance', w, async () => {
      const list = await instances(w, 'traced');
      return list.some((i) => i.ready) && list;
    });
    const answer = await invoke(instance!.url, {});
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { preloaded: true, version: 'v1', pid: answer.body.pid });
  } finally {
    await teardown(w);
  }
});

test('concurrency.perRuntime: one runtime process of the instance runs its calls at once', async () => {
  const fn = JSON.parse(manifest('together', 'v1', { minWarm: 1 })) as { spec: Record<string, unknown> };
  fn.spec.concurrency = { perInstance: 4, perRuntime: 4 };
  const w = await world({ 'together.json': JSON.stringify(fn) });
  try {
    const [instance] = await until('a ready instance', w, async () => {
      const list = await instances(w, 'together');
      return list.some((i) => i.ready) && list;
    });
    const began = performance.now();
    const answers = await Promise.all([1, 2, 3, 4].map(() => invoke(instance!.url, { sleep: 500 })));
    const elapsedMs = performance.now() - began;
    for (const answer of answers) assert.equal(answer.status, 200);
    assert.equal(new Set(answers.map((a) => a.body.pid)).size, 1, 'one runtime process');
    assert.ok(elapsedMs < 1500, `4 calls of 500 ms took ${elapsedMs.toFixed(0)} ms: not at once`);
  } finally {
    await teardown(w);
  }
});
