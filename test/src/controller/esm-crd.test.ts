import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { validateEventSourceMappingSpec, type EventSourceMappingResource } from '@hearth/api';
import { KUBE_MISSING, kubeBinaries, startControlPlane, type ControlPlane } from '../harness/kube.js';

const CRD = fileURLToPath(new URL('../../../charts/hearth/crds/eventsourcemapping.yaml', import.meta.url));

function manifest(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: 'hearth.dev/v1alpha1',
    kind: 'EventSourceMapping',
    metadata: { name },
    spec,
  });
}

const nats = { nats: { url: 'nats://nats.messaging:4222', stream: 'orders' } };

describe(
  'the EventSourceMapping CRD in a real kube-apiserver',
  { skip: kubeBinaries() ? false : KUBE_MISSING },
  () => {
    let cp: ControlPlane;
    const ns = 'mappings';

    before(async () => {
      cp = await startControlPlane({ crds: [CRD] });
      await cp.kubectl(['create', 'namespace', ns]);
    });
    after(async () => {
      await cp?.stop();
    });

    const apply = (name: string, spec: Record<string, unknown>) =>
      cp.kubectl(['-n', ns, 'apply', '-f', '-'], manifest(name, spec));
    const get = async (name: string) =>
      JSON.parse(
        await cp.kubectl(['-n', ns, 'get', 'esm', name, '-o', 'json']),
      ) as EventSourceMappingResource;

    test('the API server fills in the defaults api/src/event-source.ts declares', async () => {
      const goods: [string, Record<string, unknown>][] = [
        ['orders', { functionName: 'process-orders', source: nats }],
        [
          'nightly',
          {
            functionName: 'report',
            source: { schedule: { expression: 'cron(0 3 * * ? *)', input: { kind: 'nightly', n: [1, 2] } } },
          },
        ],
        ['api', { functionName: 'web', source: { http: { pathPrefix: '/api' } } }],
        ['uploads', { functionName: 'thumbnail', source: { bucket: { prefix: 'images/' } } }],
        [
          'replay',
          {
            functionName: 'process-orders',
            source: { redisStream: { stream: 'orders' } },
            startingPosition: 'AT_TIMESTAMP',
            startingPositionTimestamp: '2026-01-01T00:00:00Z',
            maximumRecordAgeInSeconds: 60,
            functionResponseTypes: ['ReportBatchItemFailures'],
            destinationConfig: { onFailure: { stream: 'orders-failed' } },
          },
        ],
      ];
      for (const [name, spec] of goods) {
        await apply(name, spec);
        const stored = await get(name);
        assert.deepEqual(stored.spec, validateEventSourceMappingSpec(spec).spec, name);
      }
      const orders = (await get('orders')).spec;
      assert.equal(orders.batchSize, 100);
      assert.equal(orders.startingPosition, 'LATEST');
      assert.equal(orders.maximumRetryAttempts, -1);
      assert.deepEqual(orders.destinationConfig, {});
    });

    test('bad mappings are rejected, each with a message naming the field, as api/src/event-source.ts names it', async () => {
      const cases: [Record<string, unknown>, string][] = [
        [{ functionName: 'f', source: { ...nats, redisStream: { stream: 'orders' } } }, 'spec.source'],
        [{ functionName: 'f', source: {} }, 'spec.source'],
        [
          { functionName: 'f', source: nats, startingPosition: 'AT_TIMESTAMP' },
          'spec.startingPositionTimestamp',
        ],
        [
          {
            functionName: 'f',
            source: nats,
            startingPosition: 'AT_TIMESTAMP',
            startingPositionTimestamp: 'noon',
          },
          'spec.startingPositionTimestamp',
        ],
        [
          { functionName: 'f', source: nats, maximumRecordAgeInSeconds: 30 },
          'spec.maximumRecordAgeInSeconds',
        ],
        [
          { functionName: 'f', source: nats, maximumRecordAgeInSeconds: 700_000 },
          'spec.maximumRecordAgeInSeconds',
        ],
        [
          {
            functionName: 'f',
            source: nats,
            destinationConfig: { onFailure: { url: 'https://example.com/failed', stream: 'failed' } },
          },
          'spec.destinationConfig.onFailure',
        ],
        [
          { functionName: 'f', source: nats, destinationConfig: { onFailure: {} } },
          'spec.destinationConfig.onFailure',
        ],
        [{ functionName: 'f', source: nats, batchSize: 0 }, 'spec.batchSize'],
        [{ functionName: 'f', source: nats, parallelizationFactor: 11 }, 'spec.parallelizationFactor'],
        [{ functionName: 'f', source: nats, startingPosition: 'EARLIEST' }, 'spec.startingPosition'],
        [{ functionName: 'Not_A_Name', source: nats }, 'spec.functionName'],
        [
          { functionName: 'f', source: { nats: { ...nats.nats, url: 'http://nats:4222' } } },
          'spec.source.nats.url',
        ],
        [
          { functionName: 'f', source: { http: { pathPrefix: '/2015-03-31/functions' } } },
          'spec.source.http.pathPrefix',
        ],
        [
          { functionName: 'f', source: { schedule: { expression: 'every day' } } },
          'spec.source.schedule.expression',
        ],
        [{ functionName: 'f', source: nats, batchSzie: 10 }, 'batchSzie'],
      ];
      for (const [spec, field] of cases) {
        const namesField = new RegExp(field.replaceAll('.', '\\.'));
        await assert.rejects(apply('bad', spec), namesField, JSON.stringify(spec));
        const problems = validateEventSourceMappingSpec(spec).problems.map((p) => `${p.path}: ${p.message}`);
        assert.ok(
          problems.some((p) => namesField.test(p)),
          `api rejects ${JSON.stringify(spec)} naming ${field} too: ${problems.join('; ')}`,
        );
      }
      await assert.rejects(cp.kubectl(['-n', ns, 'get', 'esm', 'bad']), /NotFound/);
    });

    test('status is a subresource of its own, shown in the printer columns', async () => {
      await apply('shown', { functionName: 'process-orders', source: nats });
      const patchStatus = (status: Record<string, unknown>) =>
        cp.kubectl([
          '-n',
          ns,
          'patch',
          'esm',
          'shown',
          '--subresource=status',
          '--type=merge',
          '-p',
          JSON.stringify({ status }),
        ]);
      await patchStatus({ state: 'Enabled', lastProcessingResult: 'OK', lastProcessedPosition: '42' });
      const table = await cp.kubectl(['-n', ns, 'get', 'esm', 'shown', '-o', 'wide']);
      const [header, row] = table.trim().split('\n');
      assert.match(header!, /^NAME\s+FUNCTION\s+STATE\s+LAST RESULT\s+POSITION\s+AGE$/);
      assert.match(row!, /^shown\s+process-orders\s+Enabled\s+OK\s+42\s+\S+$/);
      // A spec write through the main resource leaves the status alone, and the other way round.
      await apply('shown', { functionName: 'process-orders', source: nats, batchSize: 10 });
      const shown = await get('shown');
      assert.equal(shown.status?.state, 'Enabled');
      assert.equal(shown.spec.batchSize, 10);
      await assert.rejects(patchStatus({ state: 'Running' }), /status\.state/);
    });
  },
);
