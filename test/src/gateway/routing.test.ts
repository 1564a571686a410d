import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { RedisKeys, type DemandReport, type FunctionRoute } from '@hearth/api';
import { startRedis, type RedisServer } from '../harness/index.js';
import { API_KEY, GatewayFixture, type RunningGateway, type RunningInstance } from './fixture.js';

/** Reports which runtime process served the call, so a test can tell instances apart. */
const WHO = `
export const handler = async (event) => {
  await new Promise((resolve) => setTimeout(resolve, event.ms ?? 0));
  return { pid: process.pid };
};
`;

async function invoke(gateway: RunningGateway, name: string, ms = 0) {
  const response = await fetch(`${gateway.url}/2015-03-31/functions/${name}/invocations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}` },
    body: JSON.stringify({ ms }),
  });
  return {
    status: response.status,
    errorType: response.headers.get('x-amzn-errortype'),
    body: (await response.json()) as { pid?: number; message?: string },
  };
}

describe('routing to instances: cold-start hold, demand, draining, instances that vanish or die', () => {
  let redis: RedisServer;
  let fixture: GatewayFixture;
  let gateway: RunningGateway;
  let impatient: RunningGateway;

  before(async () => {
    redis = await startRedis();
    fixture = new GatewayFixture(redis.url);
    [gateway, impatient] = await Promise.all([
      fixture.startGateway({ HEARTH_COLD_START_BUDGET_MS: '30000', HEARTH_GATEWAY_ID: 'gw-test' }),
      fixture.startGateway({ HEARTH_COLD_START_BUDGET_MS: '300' }),
    ]);
  });

  after(async () => {
    await fixture?.stop();
    await redis?.stop();
  });

  test('a call with no instance waits, the demand reaches Redis at once, the call runs when an instance appears', async () => {
    const route = await fixture.addFunction({ name: 'cold', source: WHO });
    const listener = new Redis(redis.url);
    const wakeUps: string[] = [];
    listener.on('message', (_channel: string, name: string) => wakeUps.push(name));
    await listener.subscribe(RedisKeys.demandChannel);
    try {
      const call = invoke(gateway, 'cold');
      await waitFor(() => wakeUps.includes('cold'), 2000, 'a wake-up on the demand channel');
      const report = JSON.parse(
        (await fixture.redis.hget(RedisKeys.demand('cold'), 'gw-test'))!,
      ) as DemandReport;
      assert.equal(report.waiting, 1);
      assert.ok(Date.now() - report.at < 2000);
      await fixture.addInstance(route);
      const answer = await call;
      assert.equal(answer.status, 200);
      assert.equal(typeof answer.body.pid, 'number', JSON.stringify(answer.body));
    } finally {
      listener.disconnect();
    }
  });

  test('no instance within the cold-start budget: 502 ResourceNotReadyException', async () => {
    await fixture.addFunction({ name: 'never', source: WHO });
    // The gateway learns of the new function from a published message: until it has, the call is a 404.
    await known(impatient, 'never');
    const started = Date.now();
    const answer = await invoke(impatient, 'never');
    assert.equal(answer.status, 502);
    assert.equal(answer.errorType, 'ResourceNotReadyException');
    assert.ok(Date.now() - started < 3000);
  });

  test('a gateway started with --role=worker serves health and metrics, not the Invoke API', async () => {
    const worker = await fixture.startGateway({ HEARTH_GATEWAY_ROLE: 'worker' });
    const health = await fetch(`${worker.url}/healthz`);
    assert.deepEqual(await health.json(), { status: 'ok', role: 'worker' });
    assert.match(await (await fetch(`${worker.url}/metrics`)).text(), /hearth_process_resident_memory_bytes/);
    const invoke = await fetch(`${worker.url}/2015-03-31/functions/cold/invocations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}` },
      body: '{}',
    });
    assert.equal(invoke.status, 404);
    await worker.process.stop('SIGTERM', 3000);
  });

  test('SIGTERM: the gateway finishes running calls, gives its leases back and exits 0', async () => {
    const leaving = await fixture.startGateway();
    const call = invoke(leaving, 'cold', 1500);
    await sleep(500);
    leaving.process.child.kill('SIGTERM');
    const answer = await call;
    assert.equal(answer.status, 200);
    assert.deepEqual(await leaving.process.exited, { code: 0, signal: null });
    assert.equal(await fixture.redis.zcard('hearth:concurrency:unreserved'), 0);
  });

  describe('with two instances', () => {
    let route: FunctionRoute;
    let a: RunningInstance;
    let b: RunningInstance;
    let pidOfA: number;

    before(async () => {
      route = await fixture.addFunction({ name: 'pair', source: WHO });
      a = await fixture.addInstance(route, 'pair-a');
      b = await fixture.addInstance(route, 'pair-b');
      // Sequential calls pack onto the first instance by id: a.
      const answer = await invoke(gateway, 'pair');
      pidOfA = answer.body.pid!;
    });

    test('an instance marked draining gets no new calls within a second', async () => {
      await fixture.setInstance({ ...a.endpoint, draining: true });
      await sleep(1000);
      const pids = new Set<number>();
      for (let i = 0; i < 5; i++) pids.add((await invoke(gateway, 'pair')).body.pid!);
      assert.equal(pids.size, 1);
      assert.ok(!pids.has(pidOfA), 'draining a took no calls');
      await fixture.setInstance(a.endpoint);
      await sleep(1000);
      assert.equal((await invoke(gateway, 'pair')).body.pid, pidOfA, 'a takes calls again');
    });

    test('an instance that refuses (503, shutting down) or cannot be reached is skipped for another', async () => {
      // a is busy with a call the gateway does not know about, then told to shut down: it drains,
      // refusing new calls with 503, while the registry still calls it ready.
      const direct = fetch(`${a.endpoint.url}/invoke`, {
        method: 'POST',
        headers: { 'x-hearth-request-id': 'direct-1' },
        body: JSON.stringify({ ms: 2000 }),
      });
      await sleep(200);
      a.process.child.kill('SIGTERM');
      await sleep(100);
      const refused = await invoke(gateway, 'pair');
      assert.equal(refused.status, 200);
      assert.notEqual(refused.body.pid, pidOfA);
      await direct.catch(() => undefined);
      await a.process.exited;
      const unreachable = await invoke(gateway, 'pair');
      assert.equal(unreachable.status, 200, 'the stopped instance is skipped');
    });

    test('an instance dying mid-call: a Lambda-shaped 500, and the gateway goes on', async () => {
      await fixture.removeInstance(a.endpoint);
      const call = invoke(gateway, 'pair', 3000);
      await sleep(500);
      await b.process.stop('SIGKILL');
      const answer = await call;
      assert.equal(answer.status, 500);
      assert.equal(answer.errorType, 'ServiceException');
      assert.doesNotMatch(answer.body.message ?? '', /ECONN|socket|127\.0\.0\.1/, 'no internals in a 5xx');
      assert.equal((await fetch(`${gateway.url}/healthz`)).status, 200);
    });
  });
});

/** Waits until `gateway` knows the function (a DryRun stops answering 404). */
async function known(gateway: RunningGateway, name: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const response = await fetch(`${gateway.url}/2015-03-31/functions/${name}/invocations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'x-amz-invocation-type': 'DryRun' },
    });
    await response.arrayBuffer();
    if (response.status !== 404) return;
    assert.ok(Date.now() < deadline, `the gateway never learnt of ${name}`);
    await sleep(20);
  }
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    assert.ok(Date.now() < deadline, `timed out waiting: ${what}`);
    await sleep(20);
  }
}
