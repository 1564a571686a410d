import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FunctionResource } from '@hearth/api';
import { KUBE_MISSING, kubeBinaries, startControlPlane, type ControlPlane } from '../harness/kube.js';
import { startProcess, type RunningProcess } from '../harness/process.js';

const CRD = fileURLToPath(new URL('../../../charts/hearth/crds/function.yaml', import.meta.url));
const CONTROLLER_MAIN = fileURLToPath(import.meta.resolve('@hearth/controller/main'));
const NAMESPACE = 'restart';

function manifest(name: string, body: string): string {
  return JSON.stringify({
    apiVersion: 'hearth.dev/v1alpha1',
    kind: 'Function',
    metadata: { name, namespace: NAMESPACE },
    spec: {
      runtime: 'nodejs20.x',
      code: { inline: { files: { 'index.mjs': `export const handler = async (e) => ${body}` } } },
    },
  });
}

/**
 * The controller's process (kubernetes backend, no Redis: nothing polls, so only its watches can
 * tell it about new and changed Functions) while the API server goes away and comes back.
 */
describe(
  'the controller across a kube-apiserver restart',
  { skip: kubeBinaries() ? false : KUBE_MISSING },
  () => {
    let cp: ControlPlane;
    let controller: RunningProcess;

    before(async () => {
      const { HEARTH_REDIS_URL: _redis, ...withoutRedis } = process.env;
      cp = await startControlPlane({ crds: [CRD] });
      await cp.kubectl(['create', 'namespace', NAMESPACE]);
      controller = await startProcess({
        name: 'hearth-controller',
        command: process.execPath,
        args: [CONTROLLER_MAIN],
        env: {
          ...withoutRedis,
          KUBECONFIG: cp.kubeconfig,
          HEARTH_BACKEND: 'kubernetes',
          HEARTH_METRICS_PORT: '0',
          HEARTH_METRICS_HOST: '127.0.0.1',
          HEARTH_LOG_LEVEL: 'info',
        },
        ready: { line: /became the leader/ },
        readyTimeoutMs: 60_000,
      });
    });
    after(async () => {
      await controller?.stop('SIGTERM', 10_000);
      await cp?.stop();
    });

    const fnOf = async (name: string) =>
      JSON.parse(await cp.kubectl(['-n', NAMESPACE, 'get', 'fn', name, '-o', 'json'])) as FunctionResource;

    /** The revision once the Function's generation is reconciled and Ready, else undefined. */
    async function reconciledRevision(name: string, generation: number): Promise<string | undefined> {
      const fn = await fnOf(name);
      const ready = fn.status?.conditions?.find((c) => c.type === 'Ready');
      return fn.metadata.generation === generation &&
        fn.status?.observedGeneration === generation &&
        ready?.status === 'True' &&
        ready.observedGeneration === generation
        ? fn.status.revision
        : undefined;
    }

    async function until<T>(
      what: string,
      check: () => Promise<T | undefined>,
      timeoutMs: number,
    ): Promise<T> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const value = await check().catch(() => undefined);
        if (value !== undefined) return value;
        if (Date.now() > deadline)
          throw new Error(
            `timed out waiting for ${what}\n--- controller\n${controller.logs().slice(-4000)}\n${cp.logs()}`,
          );
        await sleep(250);
      }
    }

    test(
      'Functions created and changed after the API server came back are reconciled, without restarting the controller',
      { timeout: 300_000 },
      async (t) => {
        const apply = (name: string, body: string) =>
          cp.kubectl(['-n', NAMESPACE, 'apply', '-f', '-'], manifest(name, body));
        await apply('before', '1');
        const firstRevision = await until(
          '"before" reconciled',
          () => reconciledRevision('before', 1),
          60_000,
        );

        // Longer than a few missed lease renewals: the controller sees errors on its watches, its
        // lease and its writes, and has to find its way back alone.
        await cp.restartApiServer({ downMs: 5000 });
        const back = Date.now();
        await apply('after', '2');
        await apply('before', '3');

        const [afterRevision, secondRevision] = await until(
          'both Functions reconciled after the restart',
          async () => {
            const revisions = await Promise.all([
              reconciledRevision('after', 1),
              reconciledRevision('before', 2),
            ]);
            return revisions.every(Boolean) ? revisions : undefined;
          },
          90_000,
        );
        t.diagnostic(`reconciled ${((Date.now() - back) / 1000).toFixed(1)} s after the API server was back`);
        assert.notEqual(secondRevision, firstRevision, 'the changed code is a new revision');
        assert.equal(controller.child.exitCode, null, 'the controller kept running');
        assert.equal(controller.child.signalCode, null, 'the controller kept running');
        const deployments = JSON.parse(
          await cp.kubectl(['-n', NAMESPACE, 'get', 'deployments', '-o', 'json']),
        ) as { items: { metadata: { name: string } }[] };
        const names = deployments.items.map((d) => d.metadata.name);
        assert.ok(
          names.includes(`after-${afterRevision}`),
          `a Deployment for "after" in ${names.join(', ')}`,
        );
        assert.ok(
          names.includes(`before-${secondRevision}`),
          `a Deployment for the new revision of "before" in ${names.join(', ')}`,
        );
      },
    );
  },
);
