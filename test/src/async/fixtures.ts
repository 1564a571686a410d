import { setTimeout as sleep } from 'node:timers/promises';
import { validateFunctionSpec, type FunctionRoute, type FunctionSpec } from '@hearth/api';
import type { InvokeRequest, InvokeResult, Invoker } from '@hearth/gateway/core/invoker';

/** A function route as discovery yields it, with its async config and reserved concurrency. */
export function functionRoute(
  name: string,
  async: Partial<FunctionSpec['async']> = {},
  reserved?: number,
): FunctionRoute {
  const checked = validateFunctionSpec({
    runtime: 'nodejs20.x',
    code: { inline: { files: { 'index.mjs': 'export const handler = async (e) => e' } } },
    async,
    concurrency: reserved === undefined ? {} : { reserved },
  });
  if (!checked.spec) throw new Error(`bad test spec: ${JSON.stringify(checked.problems)}`);
  return {
    name,
    revision: 'r1',
    spec: checked.spec,
    state: 'Active',
    lastModified: new Date().toISOString(),
  };
}

export interface RecordedCall {
  request: InvokeRequest;
  at: number;
}

type Behaviour = (request: InvokeRequest, callNumber: number) => InvokeResult | Promise<InvokeResult>;

/**
 * An Invoker whose functions are small in-process handlers the test scripts: the async side is
 * exercised through its real interface, with Redis real too.
 */
export class ScriptedInvoker implements Invoker {
  readonly calls: RecordedCall[] = [];
  private readonly behaviours = new Map<string, Behaviour>();

  on(functionName: string, behaviour: Behaviour): this {
    this.behaviours.set(functionName, behaviour);
    return this;
  }

  callsOf(functionName: string): RecordedCall[] {
    return this.calls.filter((c) => c.request.functionName === functionName);
  }

  async invoke(request: InvokeRequest): Promise<InvokeResult> {
    const behaviour = this.behaviours.get(request.functionName);
    if (!behaviour) throw new Error(`no behaviour for ${request.functionName}`);
    const callNumber = this.callsOf(request.functionName).length + 1;
    this.calls.push({ request, at: Date.now() });
    return behaviour(request, callNumber);
  }
}

export function succeeded(body: unknown): InvokeResult {
  return { payload: Buffer.from(JSON.stringify(body)), executedVersion: '$LATEST', durationMs: 1 };
}

export function functionFailed(errorType: string, errorMessage: string): InvokeResult {
  return {
    payload: Buffer.from(JSON.stringify({ errorType, errorMessage, trace: [] })),
    functionError: 'Unhandled',
    errorType,
    executedVersion: '$LATEST',
    durationMs: 1,
  };
}

export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** Worker settings that keep Lambda's behaviour but run it in milliseconds. */
export const fastWorkerSettings = {
  retryDelaysMs: [150, 300],
  requeueBackoff: { initialMs: 40, maxMs: 400 },
  lockDurationMs: 2000,
  stalledIntervalMs: 1000,
  queueScanIntervalMs: 100,
  delivery: { attempts: 3, backoffMs: 100, httpTimeoutMs: 1000 },
} as const;
