import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { EventSourceMappingStatus, PushMapping } from '@hearth/api';
import { EventSourceMetrics } from './metrics.js';
import {
  checkMappingSpec,
  desiredPushMappings,
  mappingHash,
  MappingSupervisor,
  missingFunctionReason,
  planMappings,
  stableUid,
  startBackoffMs,
  type DesiredMapping,
} from './supervisor.js';
import type { MappingContext } from './types.js';

function mapping(name: string, spec: Record<string, unknown>, functionExists = true): DesiredMapping {
  const result = checkMappingSpec({ functionName: 'hello', ...spec });
  const id = `default/${name}`;
  return {
    id,
    name,
    namespace: 'default',
    uid: stableUid(id),
    generation: 1,
    ...(result.spec ? { spec: result.spec } : { problems: result.problems }),
    functionExists,
  };
}

const schedule = (expression = 'rate(1 minute)') => ({ source: { schedule: { expression } } });
const stream = { source: { redisStream: { stream: 'orders' } } };
const http = { source: { http: { pathPrefix: '/orders' } } };

test('the plan starts new mappings, stops gone ones and restarts changed ones, keyed by id', () => {
  const kept = mapping('kept', schedule());
  const changed = mapping('changed', schedule('rate(5 minutes)'));
  const held = new Map([
    [kept.id, mappingHash(kept)],
    [changed.id, mappingHash(mapping('changed', schedule()))],
    ['default/gone', 'abc'],
  ]);
  const fresh = mapping('fresh', stream);
  const plan = planMappings(held, new Map([kept, changed, fresh].map((m) => [m.id, m])));
  assert.deepEqual(plan.stop.sort(), ['default/changed', 'default/gone']);
  assert.deepEqual(plan.start.sort(), ['default/changed', 'default/fresh']);
});

test('neither the function coming or going nor a spec with the same content restarts a mapping', () => {
  const a = mapping('a', schedule(), true);
  const plan = planMappings(
    new Map([[a.id, mappingHash(a)]]),
    new Map([[a.id, mapping('a', schedule(), false)]]),
  );
  assert.deepEqual(plan, { stop: [], start: [] });
  // Disabling is a change: the runner stops.
  const disabled = mapping('a', { ...schedule(), enabled: false });
  assert.deepEqual(planMappings(new Map([[a.id, mappingHash(a)]]), new Map([[a.id, disabled]])), {
    stop: [a.id],
    start: [a.id],
  });
});

test('a bad schedule expression is a spec problem naming the field', () => {
  const result = checkMappingSpec({ functionName: 'hello', ...schedule('cron(0 12 * * * *)') });
  assert.equal(result.spec, undefined);
  assert.equal(result.problems[0]?.path, 'spec.source.schedule.expression');
  assert.equal(
    checkMappingSpec({ functionName: 'hello', batchSize: 0, ...stream }).problems[0]?.path,
    'spec.batchSize',
  );
});

test('only HTTP and bucket mappings are pushed to the gateways, disabled ones marked so', () => {
  const pushed = desiredPushMappings([
    mapping('route', http),
    mapping('tick', schedule()),
    mapping('files', { enabled: false, source: { bucket: { bucket: 'uploads' } } }),
    mapping('broken', { source: {} }),
  ]);
  assert.deepEqual(
    pushed.map((p) => [p.name, p.enabled, Boolean(p.http), Boolean(p.bucket)]),
    [
      ['files', false, false, true],
      ['route', true, true, false],
    ],
  );
  assert.equal(pushed[1]!.http!.method, 'ANY');
});

test('start retries back off and are capped', () => {
  assert.deepEqual(
    [1, 2, 3, 10].map((n) => startBackoffMs(n, 1000, 60_000)),
    [1000, 2000, 4000, 60_000],
  );
});

/** A supervisor whose runners record what happened to them and whose sources fail on demand. */
function harness(failOpens = 0) {
  const events: string[] = [];
  const statuses = new Map<string, EventSourceMappingStatus>();
  const published: PushMapping[][] = [];
  let opens = 0;
  const supervisor = new MappingSupervisor({
    startRunner: (ctx: MappingContext) => {
      opens++;
      if (opens <= failOpens) return Promise.reject(new Error(`source down (${opens})`));
      events.push(`start ${ctx.name} ${ctx.spec.source.schedule?.expression ?? ''}`.trim());
      ctx.reportStatus({ lastProcessedPosition: `p${opens}` });
      return Promise.resolve({
        stop: () => {
          events.push(`stop ${ctx.name}`);
          return Promise.resolve();
        },
      });
    },
    context: {
      invoker: { invoke: () => Promise.resolve({ kind: 'success', payload: '' }) },
      redisUrl: 'redis://unused',
      sendToDestination: () => Promise.resolve(),
      metrics: new EventSourceMetrics(new Registry()),
      region: 'us-east-1',
      accountId: '000000000000',
    },
    statusWriter: {
      write: (m, status) => {
        statuses.set(m.id, structuredClone(status));
        return Promise.resolve();
      },
      prune: (keep) => {
        for (const id of statuses.keys()) if (!keep.has(id)) statuses.delete(id);
        return Promise.resolve();
      },
    },
    pushPublisher: {
      sync: (mappings) => {
        published.push(mappings);
        return Promise.resolve();
      },
    },
    logger: pino({ level: 'silent' }),
    statusFlushMs: 5,
    startRetryBaseMs: 20,
  });
  return { supervisor, events, statuses, published };
}

const desired = (...mappings: DesiredMapping[]) => new Map(mappings.map((m) => [m.id, m]));

async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await sleep(10);
  assert.ok(check(), what);
}

test('the supervisor runs, restarts and stops mappings as the desired set changes, with status', async () => {
  const { supervisor, events, statuses } = harness();
  await supervisor.reconcile(desired(mapping('tick', schedule())));
  await eventually(() => statuses.get('default/tick')?.state === 'Enabled', 'enabled');
  assert.equal(statuses.get('default/tick')?.observedGeneration, 1);
  // Level-triggered: the same desired set again changes nothing.
  await supervisor.reconcile(desired(mapping('tick', schedule())));
  await supervisor.reconcile(desired({ ...mapping('tick', schedule('rate(2 minutes)')), generation: 2 }));
  await eventually(() => statuses.get('default/tick')?.observedGeneration === 2, 'generation 2 observed');
  assert.equal(statuses.get('default/tick')?.lastProcessedPosition, 'p2');
  await supervisor.reconcile(desired());
  await eventually(() => !statuses.has('default/tick'), 'status of a removed mapping pruned');
  assert.deepEqual(events, [
    'start tick rate(1 minute)',
    'stop tick',
    'start tick rate(2 minutes)',
    'stop tick',
  ]);
  await supervisor.stop();
});

test('disabled, invalid and function-less mappings say so in status; push mappings are published', async () => {
  const { supervisor, events, statuses, published } = harness();
  await supervisor.reconcile(
    desired(
      mapping('off', { ...schedule(), enabled: false }),
      mapping('bad', { ...schedule(), batchSize: 0 }),
      mapping('orphan', schedule(), false),
      mapping('route', http),
    ),
  );
  await eventually(() => statuses.size === 4, 'four statuses');
  assert.equal(statuses.get('default/off')?.state, 'Disabled');
  assert.equal(statuses.get('default/bad')?.state, 'Failed');
  assert.match(statuses.get('default/bad')?.stateReason ?? '', /spec\.batchSize/);
  assert.equal(statuses.get('default/orphan')?.state, 'Enabled');
  assert.equal(statuses.get('default/orphan')?.stateReason, missingFunctionReason('hello'));
  assert.equal(statuses.get('default/route')?.state, 'Enabled');
  assert.deepEqual(
    published.at(-1)?.map((p) => p.name),
    ['route'],
  );
  assert.deepEqual(events, ['start orphan rate(1 minute)']);
  // The function appears: the reason goes, the runner stays.
  await supervisor.reconcile(desired(mapping('orphan', schedule(), true)));
  await eventually(() => statuses.get('default/orphan')?.stateReason === undefined, 'reason cleared');
  assert.deepEqual(published.at(-1), []);
  assert.deepEqual(events, ['start orphan rate(1 minute)']);
  await supervisor.stop();
});

test('a source that cannot be opened is Failed with the reason, and retried until it opens', async () => {
  const { supervisor, events, statuses } = harness(2);
  await supervisor.reconcile(desired(mapping('tick', schedule())));
  await eventually(() => statuses.get('default/tick')?.state === 'Failed', 'failed first');
  assert.match(statuses.get('default/tick')?.stateReason ?? '', /source down/);
  await eventually(() => statuses.get('default/tick')?.state === 'Enabled', 'enabled after retries');
  assert.deepEqual(events, ['start tick rate(1 minute)']);
  await supervisor.stop();
  assert.deepEqual(events, ['start tick rate(1 minute)', 'stop tick']);
});
