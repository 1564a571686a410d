/**
 * Hearth's language bootstraps behind AWS's Runtime Interface Emulator: if they work against
 * AWS's own Runtime API server, they speak the Runtime API as Lambda does, not merely as our
 * shim does.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort, startProcess, type RunningProcess } from '../harness/index.js';
import { repoRoot, requirePeer } from './peers.js';

const fixtures = join(repoRoot, 'test', 'src', 'conformance', 'fixtures');
const nodeBootstrap = join(repoRoot, 'runtime-shim', 'dist', 'runtimes', 'nodejs', 'bootstrap.cjs');
const pythonBootstrap = join(repoRoot, 'runtime-shim', 'runtimes', 'python3', 'bootstrap.py');
const FUNCTION_NAME = 'conformance-fn';
const TIMEOUT_SECONDS = 30;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

interface Emulator {
  process: RunningProcess;
  invoke(event: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
}

/** Starts aws-lambda-rie with `bootstrap` as the runtime command, on free ports. */
async function startEmulator(
  name: string,
  bootstrap: string[],
  taskRoot: string,
  handler: string,
): Promise<Emulator> {
  const rie = requirePeer('aws-lambda-rie');
  const [port, runtimeApiPort] = [await freePort(), await freePort()];
  const emulator = await startProcess({
    name,
    command: rie,
    args: [
      '--runtime-interface-emulator-address',
      `127.0.0.1:${port}`,
      '--runtime-api-address',
      `127.0.0.1:${runtimeApiPort}`,
      ...bootstrap,
    ],
    cwd: taskRoot,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      _HANDLER: handler,
      LAMBDA_TASK_ROOT: taskRoot,
      AWS_LAMBDA_FUNCTION_NAME: FUNCTION_NAME,
      AWS_LAMBDA_FUNCTION_TIMEOUT: String(TIMEOUT_SECONDS),
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '256',
      // Keeps Python's bytecode cache out of the fixture folder (the repository).
      PYTHONDONTWRITEBYTECODE: '1',
    },
    ready: { check: () => portOpen(port) },
  });
  const url = `http://127.0.0.1:${port}/2015-03-31/functions/function/invocations`;
  return {
    process: emulator,
    async invoke(event) {
      const response = await fetch(url, { method: 'POST', body: JSON.stringify(event) });
      const text = await response.text();
      try {
        return { status: response.status, body: JSON.parse(text) as Record<string, unknown> };
      } catch {
        throw new Error(`${name} answered ${response.status} with non-JSON "${text}":\n${emulator.logs()}`);
      }
    },
  };
}

/** The checks both bootstraps must pass; `errorShape` is the language's own error body. */
function conformance(
  label: string,
  start: () => Promise<Emulator>,
  errorShape: { traceField: 'trace' | 'stackTrace' },
) {
  describe(label, () => {
    let emulator: Emulator;
    before(async () => {
      emulator = await start();
    });
    after(async () => {
      await emulator?.process.stop();
    });

    test('an invocation returns the handler result with the context Lambda gives', async () => {
      const event = { hello: 'world', list: [1, 2, 3] };
      const { status, body } = await emulator.invoke(event);
      assert.equal(status, 200, JSON.stringify(body));
      assert.deepEqual(body.event, event);
      assert.match(String(body.requestId), UUID);
      assert.equal(body.functionName, FUNCTION_NAME);
      assert.match(
        String(body.invokedFunctionArn),
        new RegExp(`^arn:aws:lambda:[^:]+:\\d+:function:${FUNCTION_NAME}$`),
      );
      assert.equal(String(body.memoryLimitInMB), '256');
      const remaining = Number(body.remainingMs);
      assert.ok(
        remaining > (TIMEOUT_SECONDS - 5) * 1000 && remaining <= TIMEOUT_SECONDS * 1000,
        `remaining ${remaining} ms`,
      );
    });

    test('a handler error comes back in the language runtime error shape', async () => {
      const { status, body } = await emulator.invoke({ fail: 'boom' });
      assert.equal(status, 200);
      assert.equal(body.errorType, 'FixtureError');
      assert.equal(body.errorMessage, 'boom');
      const trace = body[errorShape.traceField];
      assert.ok(
        Array.isArray(trace) && trace.length > 0,
        `${errorShape.traceField}: ${JSON.stringify(body)}`,
      );
    });

    test('invocations in a row reuse the warm runtime, each with its own request id', async () => {
      const answers = [];
      for (let i = 0; i < 5; i++) answers.push((await emulator.invoke({ i })).body);
      assert.deepEqual(
        answers.map((a) => (a.event as { i: number }).i),
        [0, 1, 2, 3, 4],
      );
      const counts = answers.map((a) => Number(a.invocations));
      assert.deepEqual(
        counts,
        counts.map((_, i) => counts[0]! + i),
        'the module stayed loaded: its counter went up by one per invocation',
      );
      assert.equal(new Set(answers.map((a) => a.requestId)).size, 5);
    });
  });
}

conformance(
  'Hearth Node.js bootstrap behind aws-lambda-rie',
  () => startEmulator('rie-node', [process.execPath, nodeBootstrap], join(fixtures, 'node'), 'index.handler'),
  { traceField: 'trace' },
);

conformance(
  'Hearth Python bootstrap behind aws-lambda-rie',
  () => startEmulator('rie-python', ['python3', pythonBootstrap], join(fixtures, 'python'), 'app.handler'),
  { traceField: 'stackTrace' },
);
