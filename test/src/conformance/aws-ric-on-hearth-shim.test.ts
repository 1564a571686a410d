/**
 * AWS's Node.js runtime interface client (aws-lambda-ric) against Hearth's runtime shim: a
 * `provided.al2023` function whose bootstrap runs AWS's client. If AWS's own client works
 * unchanged, the shim's Runtime API is the one Lambda serves, not one only our bootstraps accept.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ShimEnv, ShimHeaders, ShimPaths, functionArn } from '@hearth/api';
import { freePort, startProcess, type RunningProcess } from '../harness/index.js';
import { repoRoot, requirePeer } from './peers.js';

const codeDir = join(repoRoot, 'test', 'src', 'conformance', 'fixtures', 'node');
const shimMain = join(repoRoot, 'runtime-shim', 'dist', 'main.cjs');
const FUNCTION_NAME = 'ric-conformance';
const TIMEOUT_SECONDS = 5;

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

describe("AWS's aws-lambda-ric behind the Hearth shim (provided.al2023)", () => {
  let shim: RunningProcess;
  let stateDir: string;
  let invokeUrl: string;

  async function invoke(event: unknown, requestId = randomUUID(), deadlineMs?: number): Promise<Answer> {
    const headers: Record<string, string> = { [ShimHeaders.requestId]: requestId };
    if (deadlineMs !== undefined) headers[ShimHeaders.deadlineMs] = String(deadlineMs);
    const response = await fetch(invokeUrl, { method: 'POST', headers, body: JSON.stringify(event) });
    const text = await response.text();
    try {
      return {
        status: response.status,
        headers: response.headers,
        body: JSON.parse(text) as Record<string, unknown>,
      };
    } catch {
      throw new Error(`the shim answered ${response.status} with non-JSON "${text}":\n${shim.logs()}`);
    }
  }

  before(async () => {
    const ric = requirePeer('aws-lambda-ric');
    stateDir = await mkdtemp(join(tmpdir(), 'hearth-ric-conformance-'));
    const port = await freePort();
    shim = await startProcess({
      name: 'shim-ric',
      command: process.execPath,
      args: [shimMain],
      env: {
        PATH: `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`,
        HOME: process.env.HOME,
        [ShimEnv.functionName]: FUNCTION_NAME,
        [ShimEnv.runtime]: 'provided.al2023',
        [ShimEnv.handler]: 'index.handler',
        [ShimEnv.codeDir]: codeDir,
        [ShimEnv.host]: '127.0.0.1',
        [ShimEnv.port]: String(port),
        [ShimEnv.memoryMb]: '256',
        [ShimEnv.timeoutSeconds]: String(TIMEOUT_SECONDS),
        [ShimEnv.stateDir]: stateDir,
        // The function's own environment: how its bootstrap finds AWS's client.
        RIC_NODE: process.execPath,
        RIC_ENTRY: ric,
      },
      ready: { url: `http://127.0.0.1:${port}${ShimPaths.readyz}` },
      readyTimeoutMs: 20_000,
    });
    invokeUrl = `http://127.0.0.1:${port}${ShimPaths.invoke}`;
  });

  after(async () => {
    await shim?.stop();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  test('the handler result comes back, with the request id, deadline and function identity it saw', async () => {
    const requestId = randomUUID();
    const deadline = Date.now() + 2000;
    const event = { hello: 'from the shim', nested: { n: 1 } };
    const { status, headers, body } = await invoke(event, requestId, deadline);
    assert.equal(status, 200, `${JSON.stringify(body)}\n${shim.logs()}`);
    assert.equal(headers.get(ShimHeaders.functionError), null);
    assert.deepEqual(body.event, event);
    assert.equal(body.requestId, requestId);
    assert.equal(body.functionName, FUNCTION_NAME);
    assert.equal(body.invokedFunctionArn, functionArn(FUNCTION_NAME));
    assert.equal(String(body.memoryLimitInMB), '256');
    const remaining = Number(body.remainingMs);
    assert.ok(
      remaining > 0 && remaining <= 2000,
      `getRemainingTimeInMillis() gave ${remaining} for a 2 s deadline`,
    );
  });

  test("a handler error is reported in AWS's Node error shape and flagged as a function error", async () => {
    const { status, headers, body } = await invoke({ fail: 'broken on purpose' });
    assert.equal(status, 200);
    assert.equal(headers.get(ShimHeaders.functionError), 'Unhandled');
    assert.equal(body.errorType, 'FixtureError');
    assert.equal(body.errorMessage, 'broken on purpose');
    assert.ok(Array.isArray(body.trace) && body.trace.length > 0, JSON.stringify(body));
  });

  test('the next invocations run warm in the same runtime, capped by the function timeout', async () => {
    const first = await invoke({ n: 1 });
    const second = await invoke({ n: 2 });
    assert.equal(second.status, 200);
    assert.equal(
      Number(second.body.invocations),
      Number(first.body.invocations) + 1,
      'the module stayed loaded',
    );
    assert.notEqual(second.body.requestId, first.body.requestId);
    // No deadline sent: the function's own timeout bounds the invocation.
    const remaining = Number(second.body.remainingMs);
    assert.ok(remaining > 0 && remaining <= TIMEOUT_SECONDS * 1000, `remaining ${remaining} ms`);
  });
});
