/**
 * Scale from zero on the process backend: `hearth dev` (its controller, gateway and async
 * workers, on a Redis this benchmark starts so it can watch the registry) with a no-op function
 * of `minWarm: 0, idleSeconds: 1`. Each run waits until the function has no instance left, then
 * times one sync invoke from the moment it is sent until its answer: the gateway holds the call,
 * signals demand, the controller starts a runtime shim, the shim starts its runtime, the call runs.
 *
 * Side by side in the same run: the runtime shim alone, spawned directly and called until it
 * first answers (the part of the cold start that is the instance itself, with the same default
 * isolation hearth dev uses). The peer figure is Fission's published one, 110 ms p50 cold start
 * from its warm pool on an 8-core machine: a published number, not measured here.
 *
 * Usage: node bench/dist/index.js scale-from-zero [--runs 7] [--shim-main runtime-shim/dist/main.cjs]
 *   [--out results.md]
 * (--shim-main: another build of the shim to measure, for both paths, to compare builds.)
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { RedisKeys, ShimEnv, ShimPaths, type FunctionRoute } from '@hearth/api';
import { freePort, startProcess, startRedis, type RedisServer, type RunningProcess } from '@hearth/test';
import { repoRoot } from '@hearth/test/conformance/peers';
import { hearthMain } from '@hearth/test/management/hearth-dev';
import { spawnServer } from './server-process.js';

const FUNCTION = 'noop';
const handlerDir = join(repoRoot, 'bench', 'fixtures', 'noop');
const shimMain = join(repoRoot, 'runtime-shim', 'dist', 'main.cjs');
const GOAL_MS = 300;
const FISSION_P50_MS = 110;

interface Options {
  runs: number;
  out: string | undefined;
  shimMain: string;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string', default: '7' },
      out: { type: 'string' },
      'shim-main': { type: 'string', default: shimMain },
    },
  });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1)
    throw new Error(`--runs must be a positive integer, got "${values.runs}"`);
  return { runs, out: values.out, shimMain: values['shim-main'] };
}

const manifest = {
  apiVersion: 'hearth.dev/v1alpha1',
  kind: 'Function',
  metadata: { name: FUNCTION },
  spec: {
    runtime: 'nodejs20.x',
    handler: 'index.handler',
    code: { inline: { files: { 'index.mjs': 'export const handler = async () => ({ ok: true });\n' } } },
    // Idle for a second and it goes back to zero, so the runs need not wait long.
    scaling: { minWarm: 0, idleSeconds: 1 },
  },
};

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number, dev: RunningProcess) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${dev.logs().slice(-4000)}`);
    await sleep(50);
  }
}

/** One sync invoke; its duration in ms, from sending to the whole answer. */
async function timedInvoke(url: string): Promise<number> {
  const start = performance.now();
  const response = await fetch(`${url}/2015-03-31/functions/${FUNCTION}/invocations`, {
    method: 'POST',
    body: '{}',
    signal: AbortSignal.timeout(30_000),
  });
  const body = await response.text();
  const elapsed = performance.now() - start;
  if (response.status !== 200 || body !== '{"ok":true}')
    throw new Error(`the call answered ${response.status}: ${body}`);
  return elapsed;
}

/** The shim alone: spawn to its first successful answer, with hearth dev's default isolation. */
async function shimColdStart(main: string, stateDir: string, run: number): Promise<number> {
  const port = await freePort();
  const start = performance.now();
  const shim = spawnServer({
    logDir: stateDir,
    name: 'shim',
    command: process.execPath,
    args: [main],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      [ShimEnv.functionName]: FUNCTION,
      [ShimEnv.revision]: 'r1',
      [ShimEnv.runtime]: 'nodejs20.x',
      [ShimEnv.handler]: 'index.handler',
      [ShimEnv.codeDir]: handlerDir,
      [ShimEnv.host]: '127.0.0.1',
      [ShimEnv.port]: String(port),
      [ShimEnv.stateDir]: join(stateDir, `shim-${run}`),
    },
  });
  try {
    const deadline = start + 15_000;
    while (performance.now() < deadline) {
      const answered = await fetch(`http://127.0.0.1:${port}${ShimPaths.invoke}`, {
        method: 'POST',
        body: '{}',
        signal: AbortSignal.timeout(5000),
      }).then(
        async (r) => r.status === 200 && (await r.text()) === '{"ok":true}',
        () => false,
      );
      if (answered) return performance.now() - start;
      if (shim.hasExited()) throw new Error(`the shim exited:\n${shim.logs()}`);
      await sleep(1);
    }
    throw new Error(`the shim never answered:\n${shim.logs()}`);
  } finally {
    await shim.stop();
  }
}

const stats = (times: number[]) => {
  const sorted = [...times].sort((a, b) => a - b);
  return { p50: sorted[Math.floor(sorted.length / 2)]!, min: sorted[0]!, max: sorted.at(-1)! };
};

export async function main(argv: string[]): Promise<void> {
  const options = parseOptions(argv);
  const stateDir = await mkdtemp(join(tmpdir(), 'hearth-bench-zero-'));
  const functionsDir = join(stateDir, 'functions');
  let redis: RedisServer | undefined;
  let client: Redis | undefined;
  let dev: RunningProcess | undefined;
  try {
    redis = await startRedis();
    client = new Redis(redis.url);
    const registry = client;
    await mkdir(functionsDir);
    await writeFile(join(functionsDir, `${FUNCTION}.json`), JSON.stringify(manifest, null, 2));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    dev = await startProcess({
      name: 'hearth-dev',
      command: process.execPath,
      args: [hearthMain, 'dev', '--dir', functionsDir, '--port', String(port), '--redis-url', redis.url],
      env: { ...process.env, HEARTH_URL: '', HEARTH_TOKEN: '', HEARTH_SHIM_ENTRY: options.shimMain },
      ready: { url: `${url}/healthz` },
      readyTimeoutMs: 60_000,
    });
    const running = dev;
    await until(
      'the function to be Active',
      async () => {
        const route = await registry.get(RedisKeys.function(FUNCTION));
        return route !== null && (JSON.parse(route) as FunctionRoute).state === 'Active';
      },
      30_000,
      running,
    );
    const scaledToZero = () =>
      until(
        'the function to scale to zero',
        async () => (await registry.hlen(RedisKeys.instances(FUNCTION))) === 0,
        60_000,
        running,
      );

    // One unmeasured round first: the first start of anything reads code from a cold disk cache.
    await scaledToZero();
    await timedInvoke(url);
    const fromZero: number[] = [];
    for (let run = 0; run < options.runs; run++) {
      await scaledToZero();
      // The controller and the gateway have both seen the instance go.
      await sleep(1000);
      fromZero.push(await timedInvoke(url));
      console.error(`  run ${run + 1}: ${fromZero.at(-1)!.toFixed(1)} ms from zero`);
    }
    await dev.stop('SIGINT', 15_000);
    dev = undefined;

    const shimAlone: number[] = [];
    for (let run = 0; run < options.runs; run++)
      shimAlone.push(await shimColdStart(options.shimMain, stateDir, run));

    const hearth = stats(fromZero);
    const shim = stats(shimAlone);
    const verdict = hearth.p50 <= GOAL_MS ? 'met' : '**missed**';
    const lines = [
      `### Scale from zero, process backend (hearth dev), no-op Node function, ${options.runs} runs`,
      '',
      '| path | p50 ms | min ms | max ms | runs (ms) |',
      '| --- | ---: | ---: | ---: | --- |',
      `| Hearth: call to a function at zero instances, sent to answered | ${hearth.p50.toFixed(0)} | ${hearth.min.toFixed(0)} | ${hearth.max.toFixed(0)} | ${fromZero.map((t) => t.toFixed(0)).join(', ')} |`,
      `| runtime shim alone: spawn to first answer (same isolation) | ${shim.p50.toFixed(0)} | ${shim.min.toFixed(0)} | ${shim.max.toFixed(0)} | ${shimAlone.map((t) => t.toFixed(0)).join(', ')} |`,
      `| Fission, from its warm pool (published, 8-core machine; not measured here) | ${FISSION_P50_MS} | | | |`,
      '',
      '| goal | Hearth | |',
      '| --- | --- | --- |',
      `| answered within ${GOAL_MS} ms from zero (p50) | ${hearth.p50.toFixed(0)} ms p50, ${hearth.max.toFixed(0)} ms max (${(hearth.p50 / GOAL_MS).toFixed(2)}x the goal; ${(hearth.p50 / FISSION_P50_MS).toFixed(2)}x Fission's published p50) | ${verdict} |`,
      '',
    ];
    const markdown = lines.join('\n');
    process.stdout.write(markdown);
    if (options.out) await writeFile(options.out, markdown);
  } finally {
    await dev?.stop('SIGINT', 15_000);
    client?.disconnect();
    await redis?.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}
