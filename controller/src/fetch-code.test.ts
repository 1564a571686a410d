import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { codeFetchFailure } from './kube-objects.js';

const FETCH_CODE = fileURLToPath(new URL('./fetch-code.js', import.meta.url));
/** The smallest valid zip: an end-of-central-directory record and no entries. */
const EMPTY_ZIP = Buffer.concat([Buffer.from('PK\x05\x06'), Buffer.alloc(18)]);

/** Runs the init container's entry point as the kubelet would, reading its termination message. */
async function fetchCode(url: string, sha256: string, root: string) {
  const terminationLog = join(root, 'termination-log');
  await writeFile(terminationLog, '');
  const exitCode = await new Promise<number>((resolve) =>
    execFile(
      process.execPath,
      [FETCH_CODE],
      {
        env: {
          HEARTH_CODE_URL: url,
          HEARTH_CODE_SHA256: sha256,
          HEARTH_CODE_DIR: join(root, 'code', 'task'),
          HEARTH_TERMINATION_LOG: terminationLog,
        },
      },
      (error) => resolve(error ? Number(error.code ?? 1) : 0),
    ),
  );
  return { exitCode, message: await readFile(terminationLog, 'utf8') };
}

/** A pod whose fetch-code init container ended as the run did. */
const podAfter = (run: { exitCode: number; message: string }) => ({
  metadata: { name: 'echo-r1-x' },
  status: {
    initContainerStatuses: [
      {
        name: 'fetch-code',
        ready: run.exitCode === 0,
        restartCount: 0,
        image: 'i',
        imageID: 'i',
        state: { terminated: { exitCode: run.exitCode, message: run.message } },
      },
    ],
  },
});

test('fetch-code unpacks a matching archive and reports a wrong one in words the controller reads', async () => {
  const root = await mkdtemp(join(tmpdir(), 'hearth-fetch-code-'));
  try {
    const zip = join(root, 'code.zip');
    await writeFile(zip, EMPTY_ZIP);
    const url = pathToFileURL(zip).href;
    const sha256 = createHash('sha256').update(EMPTY_ZIP).digest('hex');

    const ok = await fetchCode(url, sha256, root);
    assert.equal(ok.exitCode, 0, ok.message);
    assert.ok((await stat(join(root, 'code', 'task'))).isDirectory());
    assert.equal(codeFetchFailure([podAfter(ok)]), undefined);

    const wrong = '0'.repeat(64);
    const mismatch = await fetchCode(url, wrong, root);
    assert.equal(mismatch.exitCode, 1);
    const failure = codeFetchFailure([podAfter(mismatch)]);
    assert.equal(failure?.reason, 'ArchiveChecksumMismatch');
    assert.match(
      failure!.message,
      new RegExp(`has sha256 ${sha256}, but spec.code.archive.sha256 expects ${wrong}`),
    );

    const missing = await fetchCode(pathToFileURL(join(root, 'gone.zip')).href, sha256, root);
    assert.equal(missing.exitCode, 1);
    assert.equal(codeFetchFailure([podAfter(missing)])?.reason, 'ArchiveUnavailable');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
