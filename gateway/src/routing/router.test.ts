import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FunctionRoute, InstanceEndpoint } from '@hearth/api';
import { validateFunctionSpec } from '@hearth/api';
import { StaticDiscovery } from '../discovery/static.js';
import { GatewayError } from '../core/errors.js';
import { InstanceRouter, pickInstance, type InstanceSlot } from './router.js';

const spec = (perInstance = 1) => {
  const result = validateFunctionSpec({
    runtime: 'nodejs20.x',
    code: { inline: { files: {} } },
    concurrency: { perInstance },
  });
  assert.ok(result.spec);
  return result.spec;
};
const route = (perInstance = 1, revision = 'r1'): FunctionRoute => ({
  name: 'f',
  revision,
  spec: spec(perInstance),
  state: 'Active',
  lastModified: '',
});
const instance = (id: string, over: Partial<InstanceEndpoint> = {}): InstanceEndpoint => ({
  id,
  function: 'f',
  revision: 'r1',
  url: `http://127.0.0.1/${id}`,
  ready: true,
  draining: false,
  ...over,
});
const slot = (id: string, inFlight: number, over: Partial<InstanceEndpoint> = {}): InstanceSlot => ({
  endpoint: instance(id, over),
  inFlight,
  skipUntil: 0,
});

test('pickInstance: only ready, non-draining instances of the current revision with room; the busiest first', () => {
  assert.equal(
    pickInstance(
      [slot('a', 0, { ready: false }), slot('b', 0, { draining: true }), slot('c', 0, { revision: 'old' })],
      'r1',
      1,
      0,
    ),
    undefined,
  );
  assert.equal(pickInstance([slot('a', 1), slot('b', 0)], 'r1', 1, 0)?.endpoint.id, 'b');
  assert.equal(pickInstance([slot('a', 1), slot('b', 2), slot('c', 0)], 'r1', 3, 0)?.endpoint.id, 'b');
  assert.equal(pickInstance([{ ...slot('a', 0), skipUntil: 100 }], 'r1', 1, 50), undefined);
});

test('a call waits for an instance that appears, demand is signalled, peaks are reported', async () => {
  const discovery = new StaticDiscovery();
  const waitingFor: string[] = [];
  const router = new InstanceRouter(discovery, {
    coldStartBudgetMs: 2000,
    onWaiting: (n) => waitingFor.push(n),
  });
  const r = route();
  discovery.setFunction(r);
  const pending = router.lease(r);
  assert.deepEqual(waitingFor, ['f']);
  assert.equal(router.load()[0]?.waiting, 1);
  discovery.setInstances('f', [instance('a')]);
  const lease = await pending;
  assert.equal(lease.endpoint.id, 'a');
  assert.deepEqual(router.load(true)[0], {
    name: 'f',
    inFlight: 1,
    waiting: 0,
    peakInFlight: 1,
    peakWaiting: 1,
  });
  lease.release();
  assert.deepEqual(router.load()[0], { name: 'f', inFlight: 0, waiting: 0, peakInFlight: 1, peakWaiting: 0 });
  router.close();
});

test('perInstance bounds calls per instance; a released place goes to the first waiter', async () => {
  const discovery = new StaticDiscovery();
  const router = new InstanceRouter(discovery, { coldStartBudgetMs: 2000, onWaiting: () => {} });
  const r = route(2);
  discovery.setFunction(r);
  discovery.setInstances('f', [instance('a')]);
  const first = await router.lease(r);
  const second = await router.lease(r);
  const order: string[] = [];
  const third = router.lease(r).then((l) => (order.push('third'), l));
  const fourth = router.lease(r).then((l) => (order.push('fourth'), l));
  first.release();
  (await third).release();
  await fourth;
  assert.deepEqual(order, ['third', 'fourth']);
  second.release();
  router.close();
});

test('draining and removed instances take no new calls; a refused instance is skipped for a while', async () => {
  const discovery = new StaticDiscovery();
  const router = new InstanceRouter(discovery, {
    coldStartBudgetMs: 100,
    onWaiting: () => {},
    refusedSkipMs: 60_000,
  });
  const r = route();
  discovery.setFunction(r);
  discovery.setInstances('f', [instance('a'), instance('b')]);
  const a = await router.lease(r);
  a.release(true);
  const b = await router.lease(r);
  assert.equal(b.endpoint.id, 'b', 'a refused, so b');
  b.release();
  discovery.setInstances('f', [instance('b', { draining: true })]);
  const error = await router.lease(r).catch((e: unknown) => e);
  assert.ok(error instanceof GatewayError);
  assert.equal(error.code, 'ResourceNotReadyException');
  router.close();
});

/** A router whose only instance, 'a', has just refused a call: skipped for `refusedSkipMs`. */
async function onlyInstanceSkipped(options: { coldStartBudgetMs: number; refusedSkipMs: number }) {
  const discovery = new StaticDiscovery();
  const router = new InstanceRouter(discovery, { ...options, onWaiting: () => {} });
  const r = route();
  discovery.setFunction(r);
  discovery.setInstances('f', [instance('a')]);
  (await router.lease(r)).release(true);
  return { router, r };
}

test('a call waiting while the only instance is skipped gets it once the skip ends', async () => {
  const { router, r } = await onlyInstanceSkipped({ coldStartBudgetMs: 2000, refusedSkipMs: 50 });
  const started = Date.now();
  const again = await router.lease(r);
  assert.equal(again.endpoint.id, 'a');
  const waited = Date.now() - started;
  assert.ok(waited >= 40 && waited < 1000, `waited ${waited} ms`);
  again.release();
  router.close();
});

test('a skip that ends between the failed look and the next timer still serves the waiting call', async (t) => {
  // The wall clock the router reads, moved by hand: its skip timer fires when the clock still says
  // 1 ms before the skip ends, and the clock reaches that end right after the failed look.
  let clock = 1_000_000;
  const reads: number[] = [];
  t.mock.method(Date, 'now', () => reads.shift() ?? clock);
  const { router, r } = await onlyInstanceSkipped({ coldStartBudgetMs: 500, refusedSkipMs: 20 });
  const waiting = router.lease(r);
  reads.push(clock + 19);
  clock += 20;
  const again = await waiting;
  assert.equal(again.endpoint.id, 'a');
  again.release();
  router.close();
});

test('when every instance stays busy past the budget, the call is throttled (429); a caller that goes away stops waiting', async () => {
  const discovery = new StaticDiscovery();
  const router = new InstanceRouter(discovery, { coldStartBudgetMs: 50, onWaiting: () => {} });
  const r = route();
  discovery.setFunction(r);
  discovery.setInstances('f', [instance('a')]);
  const busy = await router.lease(r);
  const error = await router.lease(r).catch((e: unknown) => e);
  assert.ok(error instanceof GatewayError);
  assert.equal(error.code, 'TooManyRequestsException');
  busy.release();
  // One caller's connection carries calls one after another, and may carry two at once (pipelined).
  const controller = new AbortController();
  const held = await router.lease(r);
  const first = router.lease(r, controller.signal, Date.now() + 60_000);
  held.release();
  const served = await first;
  const aborted = router.lease(r, controller.signal, Date.now() + 60_000).catch((e: unknown) => e);
  const alsoAborted = router.lease(r, controller.signal, Date.now() + 60_000).catch((e: unknown) => e);
  const other = router.lease(r, undefined, Date.now() + 60_000);
  assert.equal(router.load()[0]?.waiting, 3);
  controller.abort();
  assert.ok((await aborted) instanceof GatewayError);
  assert.ok((await alsoAborted) instanceof GatewayError);
  assert.equal(router.load()[0]?.waiting, 1, 'calls whose caller went away stop waiting, the others wait on');
  assert.ok((await router.lease(r, controller.signal).catch((e: unknown) => e)) instanceof GatewayError);
  served.release();
  (await other).release();
  router.close();
});

test('tries of one call share one budget: a spent budget fails at once', async () => {
  const discovery = new StaticDiscovery();
  const router = new InstanceRouter(discovery, { coldStartBudgetMs: 60_000, onWaiting: () => {} });
  const r = route();
  discovery.setFunction(r);
  const started = Date.now();
  const error = await router.lease(r, undefined, Date.now() - 1).catch((e: unknown) => e);
  assert.ok(error instanceof GatewayError);
  assert.ok(Date.now() - started < 1000);
  router.close();
});

test('waiting calls each end at their own time, in any order; a place freed later still goes to the next in line', async () => {
  const discovery = new StaticDiscovery();
  const router = new InstanceRouter(discovery, { coldStartBudgetMs: 60_000, onWaiting: () => {} });
  const r = route();
  discovery.setFunction(r);
  discovery.setInstances('f', [instance('a')]);
  const busy = await router.lease(r);
  const started = Date.now();
  const endedAfter = (waitMs: number) =>
    router.lease(r, undefined, started + waitMs).then(
      () => assert.fail('no place was free'),
      (error: unknown) => {
        assert.ok(error instanceof GatewayError);
        assert.equal(error.code, 'TooManyRequestsException');
        return Date.now() - started;
      },
    );
  // The later deadline queues first: the earlier one must not wait for it.
  const late = endedAfter(300);
  const early = endedAfter(80);
  const served = router.lease(r, undefined, started + 60_000);
  const earlyMs = await early;
  assert.ok(earlyMs >= 75 && earlyMs < 250, `the 80 ms wait ended after ${earlyMs} ms`);
  assert.equal(router.load()[0]?.waiting, 2);
  const lateMs = await late;
  assert.ok(lateMs >= 295 && lateMs < 600, `the 300 ms wait ended after ${lateMs} ms`);
  busy.release();
  const lease = await served;
  assert.equal(lease.endpoint.id, 'a');
  assert.equal(router.load()[0]?.waiting, 0);
  lease.release();
  router.close();
});
