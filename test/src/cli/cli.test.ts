import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hearthMain, startHearthDev, type HearthDev } from '../management/hearth-dev.js';

let dev: HearthDev;
let work: string;

before(async () => {
  dev = await startHearthDev();
  work = await mkdtemp(join(tmpdir(), 'hearth-cli-'));
});
after(async () => {
  await dev?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** A timeout with room for a first call on a busy machine (2 cores shared by many tests). */
async function setTimeoutInManifest(folder: string): Promise<void> {
  const file = join(work, folder, 'hearth.json');
  const manifest = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  await writeFile(file, JSON.stringify({ ...manifest, timeout: 30 }, null, 2));
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built `hearth` in the work folder, pointed at the running hearth dev by HEARTH_URL. */
function hearth(
  args: string[],
  options: { env?: Record<string, string>; stdin?: string } = {},
): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [hearthMain, ...args],
      {
        cwd: work,
        env: { PATH: process.env.PATH, HOME: work, HEARTH_URL: dev.url, ...options.env },
        timeout: 180_000,
      },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
    );
    if (options.stdin !== undefined) child.stdin!.end(options.stdin);
  });
}

function succeeded(run: Run, what: string): Run {
  assert.equal(run.code, 0, `${what} failed (${run.code}):\n${run.stdout}\n${run.stderr}`);
  return run;
}

test('init, deploy with node_modules, invoke, ls, get, logs, function errors, rm: output for people and for scripts, exit codes', async () => {
  succeeded(await hearth(['init', 'greeter', '--runtime', 'nodejs20.x']), 'init');
  // A dependency in node_modules: the invoke below only works if deploy packaged it.
  await mkdir(join(work, 'greeter', 'node_modules', 'shout'), { recursive: true });
  await writeFile(
    join(work, 'greeter', 'node_modules', 'shout', 'package.json'),
    JSON.stringify({ name: 'shout', main: 'index.js' }),
  );
  await writeFile(
    join(work, 'greeter', 'node_modules', 'shout', 'index.js'),
    'module.exports = (s) => s.toUpperCase() + "!";\n',
  );
  await writeFile(
    join(work, 'greeter', 'index.mjs'),
    `import shout from 'shout';\nexport const handler = async (event) => {\n  if (event.fail) throw new Error('asked to fail');\n  console.log('greeting', event.name);\n  return { greeting: shout('hello ' + event.name) };\n};\n`,
  );

  await setTimeoutInManifest('greeter');
  const deployed = succeeded(await hearth(['deploy', 'greeter']), 'deploy');
  assert.match(deployed.stdout, /Created greeter: Active/);
  assert.ok(deployed.stdout.includes(`${dev.url}/function/greeter`), deployed.stdout);

  const invoked = succeeded(
    await hearth(['invoke', 'greeter', '--payload', '{"name":"ada"}', '--log']),
    'invoke',
  );
  assert.deepEqual(JSON.parse(invoked.stdout), { greeting: 'HELLO ADA!' });
  assert.match(invoked.stderr, /START RequestId: [0-9a-f-]+/);

  await writeFile(join(work, 'event.json'), '{"name":"file"}');
  assert.deepEqual(
    JSON.parse(
      succeeded(await hearth(['invoke', 'greeter', '--payload', '@event.json']), 'invoke @file').stdout,
    ),
    { greeting: 'HELLO FILE!' },
  );
  assert.deepEqual(
    JSON.parse(
      succeeded(
        await hearth(['invoke', 'greeter', '--payload', '-'], { stdin: '{"name":"stdin"}' }),
        'invoke -',
      ).stdout,
    ),
    { greeting: 'HELLO STDIN!' },
  );

  const failed = await hearth(['invoke', 'greeter', '--payload', '{"fail":true}']);
  assert.equal(failed.code, 3, 'a function error has its own exit code');
  assert.match(failed.stdout, /asked to fail/);
  assert.match(failed.stderr, /returned an error.*hearth logs greeter/);

  const badPayload = await hearth(['invoke', 'greeter', '--payload', '{not json']);
  assert.equal(badPayload.code, 2);
  assert.match(badPayload.stderr, /not JSON/);

  const queued = succeeded(
    await hearth(['invoke', 'greeter', '--async', '--payload', '{"name":"later"}']),
    'invoke --async',
  );
  assert.match(queued.stdout, /Queued greeter/);

  const listed = JSON.parse(succeeded(await hearth(['ls', '--output', 'json']), 'ls').stdout) as {
    FunctionName: string;
    State: string;
  }[];
  assert.deepEqual(
    listed.map((f) => [f.FunctionName, f.State]),
    [['greeter', 'Active']],
  );
  assert.match(
    succeeded(await hearth(['ls']), 'ls').stdout,
    /^NAME\s+RUNTIME.*\ngreeter\s+nodejs20\.x\s+128 MB/,
  );

  const shown = succeeded(await hearth(['get', 'greeter']), 'get').stdout;
  assert.match(shown, /state\s+Active/);
  assert.match(shown, /runtime\s+nodejs20\.x \(index\.handler\)/);
  // Not in Lambda's GetFunction: from the gateway's /hearth/v1/functions/{name}.
  assert.match(shown, /concurrency\s+unreserved, 1 call at once per instance\n/);
  assert.match(shown, /instances\s+[1-9]\d* ready.* \(0 to 100, idle ones stop after 300 s\)/);

  const logs = succeeded(await hearth(['logs', 'greeter', '--lines', '1000']), 'logs').stdout;
  assert.match(logs, /greeting ada/);
  assert.match(logs, /REPORT RequestId/);

  assert.match(
    succeeded(await hearth(['dlq', 'ls', 'greeter']), 'dlq ls').stdout,
    /dead-letter queue of greeter is empty/,
  );

  // Settings from a config file when neither flags nor the environment say otherwise.
  const config = join(work, 'config.json');
  await writeFile(config, JSON.stringify({ url: dev.url, output: 'json' }));
  const fromFile = succeeded(
    await hearth(['get', 'greeter'], { env: { HEARTH_URL: '', HEARTH_CONFIG: config } }),
    'get with a config file',
  );
  const shownAsJson = JSON.parse(fromFile.stdout) as {
    Configuration: { FunctionName: string };
    Hearth: { concurrency: { perInstance: number }; instances: { ready: number } };
  };
  assert.equal(shownAsJson.Configuration.FunctionName, 'greeter');
  assert.equal(shownAsJson.Hearth.concurrency.perInstance, 1);
  assert.ok(shownAsJson.Hearth.instances.ready >= 1, fromFile.stdout);

  // A second deploy updates configuration and code; the next call runs the new code.
  await writeFile(
    join(work, 'greeter', 'index.mjs'),
    `import shout from 'shout';\nexport const handler = async (event) => ({ greeting: shout('welcome back ' + event.name) });\n`,
  );
  assert.match(succeeded(await hearth(['deploy', 'greeter']), 'redeploy').stdout, /Updated greeter: Active/);
  assert.deepEqual(
    JSON.parse(
      succeeded(await hearth(['invoke', 'greeter', '--payload', '{"name":"ada"}']), 'invoke').stdout,
    ),
    { greeting: 'WELCOME BACK ADA!' },
  );

  assert.match(succeeded(await hearth(['rm', 'greeter']), 'rm').stdout, /Deleted greeter/);
  const gone = await hearth(['get', 'greeter']);
  assert.equal(gone.code, 4);
  assert.match(gone.stderr, /ResourceNotFoundException.*\n\s+next: check the name with "hearth ls"/);
});

test('a Python function with vendored packages deploys and runs', async () => {
  succeeded(await hearth(['init', 'pyfn', '--runtime', 'python3.11']), 'init');
  await mkdir(join(work, 'pyfn', 'vendored'), { recursive: true });
  await writeFile(join(work, 'pyfn', 'vendored', '__init__.py'), 'def double(n):\n    return n * 2\n');
  await writeFile(
    join(work, 'pyfn', 'app.py'),
    'from vendored import double\n\ndef handler(event, context):\n    return {"doubled": double(event["n"])}\n',
  );
  await setTimeoutInManifest('pyfn');
  succeeded(await hearth(['deploy', 'pyfn']), 'deploy');
  assert.deepEqual(
    JSON.parse(succeeded(await hearth(['invoke', 'pyfn', '--payload', '{"n":21}']), 'invoke').stdout),
    { doubled: 42 },
  );
  succeeded(await hearth(['rm', 'pyfn']), 'rm');
});

test('mistakes say what to do next, with exit codes that tell them apart', async () => {
  await mkdir(join(work, 'empty'), { recursive: true });
  const noManifest = await hearth(['deploy', 'empty']);
  assert.equal(noManifest.code, 2);
  assert.match(noManifest.stderr, /hearth\.json not found: run "hearth init NAME/);

  const unreachable = await hearth(['ls', '--url', 'http://127.0.0.1:1']);
  assert.equal(unreachable.code, 1);
  assert.match(unreachable.stderr, /cannot reach the gateway at http:\/\/127\.0\.0\.1:1.*hearth dev/);

  const unknown = await hearth(['invoke', 'no-such-function']);
  assert.equal(unknown.code, 4);
});
