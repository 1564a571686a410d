import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startProcess } from '../harness/index.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * What this proves: the README's first command (scripts/quickstart.sh) ends by running
 * `npx hearth dev --dir examples`, and that very command, run from the repository as built here,
 * serves examples/hello. What it does not prove: that `git clone` and `npm ci` on a fresh machine
 * work (too slow for a test; scripts/quickstart.sh does them before this command).
 */
test('the README’s quickstart ends in `hearth dev --dir examples`, and that command serves examples/hello', async () => {
  const readme = await readFile(join(repo, 'README.md'), 'utf8');
  assert.match(
    readme,
    /```sh\nbash scripts\/quickstart\.sh\n```/,
    'the README starts people with scripts/quickstart.sh',
  );
  const script = (await readFile(join(repo, 'scripts', 'quickstart.sh'), 'utf8')).trimEnd().split('\n');
  const last = script.at(-1)!;
  assert.equal(last, 'exec npx hearth dev --dir examples --port "${PORT:-8080}"');

  const port = await freePort();
  const [command, ...args] = last
    .replace(/^exec /, '')
    .replace('"${PORT:-8080}"', String(port))
    .split(' ');
  const dev = await startProcess({
    name: 'quickstart',
    command: command!,
    args,
    cwd: repo,
    env: { ...process.env, HEARTH_URL: '' },
    ready: { url: `http://127.0.0.1:${port}/healthz` },
    readyTimeoutMs: 60_000,
  });
  try {
    const response = await fetch(`http://127.0.0.1:${port}/function/hello`, {
      method: 'POST',
      body: '{"name":"you"}',
    });
    const body = (await response.json()) as { message?: string; warmInvocations?: number };
    assert.equal(response.status, 200, JSON.stringify(body));
    assert.equal(body.message, 'Hello, you!');
    assert.equal(body.warmInvocations, 1);
  } finally {
    await dev.stop('SIGINT', 15_000);
  }
  assert.equal(
    existsSync(join(repo, 'examples', '.hearth')),
    false,
    'serving the examples leaves the folder as it was',
  );
});
