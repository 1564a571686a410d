import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ArchiveError, unpackArchive } from '@hearth/controller/archive';
import {
  freePort,
  startProcess,
  startRedis,
  type RedisServer,
  type RunningProcess,
} from '../harness/index.js';
import { deflatedZeros, rawZip, zipOf } from './zips.js';

const GATEWAY_MAIN = fileURLToPath(import.meta.resolve('@hearth/gateway/main'));
/** Small enough that the quota test fills it with two uploads. */
const QUOTA_BYTES = 300_000;

/** Every file under a directory, relative, with symlinks listed as links (never followed). */
async function tree(dir: string, prefix = ''): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true }).catch(() => [])) {
    const path = join(prefix, entry.name);
    if (entry.isDirectory()) found.push(`${path}/`, ...(await tree(dir, path)));
    else found.push(path);
  }
  return found.sort();
}

/**
 * Archives no upload may get past, each with the error it must get. The escape targets are
 * unique paths, so that their absence afterwards proves nothing was written there.
 */
function hostileCorpus(escapeName: string) {
  const zeros900k = deflatedZeros(900 * 1024);
  return [
    {
      what: 'an entry climbing out with ..',
      zip: rawZip([{ name: `../${escapeName}`, data: Buffer.from('x') }]),
      error: 'InvalidZipFileException',
      message: /\.\./,
    },
    {
      what: 'an absolute path',
      zip: rawZip([{ name: `/tmp/${escapeName}`, data: Buffer.from('x') }]),
      error: 'InvalidZipFileException',
      message: /absolute/,
    },
    {
      what: 'a symlink out of the root',
      zip: rawZip([{ name: 'link', data: Buffer.from('../../../../etc'), mode: 0o120777 }]),
      error: 'InvalidZipFileException',
      message: /symlink "link" points outside/,
    },
    {
      what: 'a file written through a symlink',
      zip: rawZip([
        { name: 'dir', data: Buffer.from('sub'), mode: 0o120777 },
        { name: 'dir/x.js', data: Buffer.from('x') },
      ]),
      error: 'InvalidZipFileException',
      message: /inside the symlink "dir"/,
    },
    {
      what: 'a zip bomb (one entry inflating 1000 times)',
      zip: rawZip([{ name: 'bomb', data: Buffer.alloc(0), deflated: deflatedZeros(20 * 1024 * 1024) }]),
      error: 'InvalidZipFileException',
      message: /zip bomb/,
    },
    {
      what: 'an entry whose declared size lies',
      zip: rawZip([{ name: 'liar', data: Buffer.alloc(0), deflated: zeros900k, declaredSize: 100 }]),
      error: 'InvalidZipFileException',
      message: /liar|bytes|size/i,
    },
    {
      what: 'more than 250 MB unzipped in small honest entries',
      zip: rawZip(
        Array.from({ length: 300 }, (_, i) => ({
          name: `f${i}`,
          data: Buffer.alloc(0),
          deflated: zeros900k,
        })),
      ),
      error: 'RequestTooLargeException',
      message: /Unzipped size must be smaller than 262144000 bytes/,
    },
    {
      what: 'a corrupt archive',
      zip: randomBytes(4096),
      error: 'InvalidZipFileException',
      message: /Could not unzip/,
    },
    {
      what: 'a truncated archive',
      zip: rawZip([{ name: 'a.js', data: randomBytes(2000), deflate: true }]).subarray(0, 1500),
      error: 'InvalidZipFileException',
      message: /Could not unzip/,
    },
  ];
}

describe('uploads through the management API', () => {
  let redis: RedisServer;
  let gateway: RunningProcess;
  let root: string;
  let url: string;
  const functionsDir = () => join(root, 'functions');
  const storeDir = () => join(root, 'functions', '.hearth', 'code');

  before(async () => {
    redis = await startRedis();
    root = await mkdtemp(join(tmpdir(), 'hearth-uploads-'));
    await mkdir(functionsDir());
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    gateway = await startProcess({
      name: 'gateway',
      command: process.execPath,
      args: [
        GATEWAY_MAIN,
        `--port=${port}`,
        '--host=127.0.0.1',
        '--auth=false',
        `--redis-url=${redis.url}`,
        `--functions-dir=${functionsDir()}`,
        `--code-store-bytes=${QUOTA_BYTES}`,
        '--log-level=warn',
      ],
      ready: { url: `${url}/healthz` },
    });
  });
  after(async () => {
    await gateway?.stop();
    await redis?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  async function create(
    name: string,
    zip: Buffer,
  ): Promise<{ status: number; error: string | null; body: Record<string, unknown> }> {
    const response = await fetch(`${url}/2015-03-31/functions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        FunctionName: name,
        Runtime: 'nodejs20.x',
        Handler: 'index.handler',
        Role: 'r',
        Code: { ZipFile: zip.toString('base64') },
      }),
    });
    return {
      status: response.status,
      error: response.headers.get('x-amzn-errortype'),
      body: (await response.json()) as Record<string, unknown>,
    };
  }

  test('hostile archives are refused with the right error, and nothing is written anywhere', async () => {
    const escapeName = `hearth-escape-${randomBytes(6).toString('hex')}.txt`;
    const before = await tree(root);
    for (const [i, sample] of hostileCorpus(escapeName).entries()) {
      const result = await create(`hostile-${i}`, sample.zip);
      assert.equal(result.error, sample.error, `${sample.what}: ${JSON.stringify(result.body)}`);
      assert.ok(
        result.status === 400 || result.status === 413,
        `${sample.what}: a client error, not retried (got ${result.status})`,
      );
      assert.match(String(result.body.message), sample.message, sample.what);
    }
    assert.equal(existsSync(join(root, escapeName)), false);
    assert.equal(existsSync(join('/tmp', escapeName)), false);
    assert.deepEqual(await tree(root), before, 'no manifest, no stored code, no temp file');
    const listed = (await (await fetch(`${url}/2015-03-31/functions`)).json()) as { Functions: unknown[] };
    assert.deepEqual(listed.Functions, []);
  });

  test('a zip over 50 MB is refused as too large, before it is stored', async () => {
    const big = rawZip([{ name: 'blob', data: randomBytes(51 * 1024 * 1024) }]);
    const result = await create('too-big', big);
    assert.equal(result.status, 413);
    assert.equal(result.error, 'RequestTooLargeException');
    // In base64 inside JSON any zip over 50 MB passes Lambda's request limit, so that is what answers.
    assert.match(
      String(result.body.message),
      /Request must be smaller than 69905067 bytes for the CreateFunction operation/,
    );
    assert.deepEqual(await tree(storeDir()), []);
  });

  test('the code store quota answers CodeStorageExceededException; deleting a function frees its code', async () => {
    const incompressible = () =>
      zipOf({ 'index.mjs': 'export const handler = async () => 1;', 'blob.bin': randomBytes(200_000) });
    const first = await create('quota-a', await incompressible());
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const second = await create('quota-b', await incompressible());
    assert.equal(second.error, 'CodeStorageExceededException');
    assert.equal(second.status, 400);
    const deleted = await fetch(`${url}/2015-03-31/functions/quota-a`, { method: 'DELETE' });
    assert.equal(deleted.status, 204);
    assert.deepEqual(await tree(storeDir()), [], 'the deleted function’s code was reclaimed');
    const third = await create('quota-b', await incompressible());
    assert.equal(third.status, 201, JSON.stringify(third.body));
    const settings = (await (await fetch(`${url}/2016-08-19/account-settings/`)).json()) as {
      AccountLimit: { TotalCodeSize: number };
      AccountUsage: { TotalCodeSize: number; FunctionCount: number };
    };
    assert.equal(settings.AccountLimit.TotalCodeSize, QUOTA_BYTES);
    assert.equal(settings.AccountUsage.FunctionCount, 1);
    assert.ok(settings.AccountUsage.TotalCodeSize > 200_000);
  });
});

describe('the controller unpacking an archive', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'hearth-unpack-'));
  });
  after(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  async function archive(zip: Buffer, name: string) {
    const file = join(root, `${name}.zip`);
    await writeFile(file, zip);
    return { url: pathToFileURL(file).href, sha256: createHash('sha256').update(zip).digest('hex') };
  }

  test('a good archive keeps executable bits and internal symlinks', async () => {
    const zip = rawZip([
      { name: 'bootstrap', data: Buffer.from('#!/bin/sh\necho hi\n'), mode: 0o100755 },
      { name: 'lib/real.js', data: Buffer.from('export default 1;\n'), deflate: true },
      { name: 'lib/alias.js', data: Buffer.from('real.js'), mode: 0o120777 },
    ]);
    const dir = join(root, 'good');
    await unpackArchive(await archive(zip, 'good'), dir);
    assert.equal((await stat(join(dir, 'bootstrap'))).mode & 0o777, 0o755);
    assert.equal(await readlink(join(dir, 'lib', 'alias.js')), 'real.js');
    assert.equal(await readFile(join(dir, 'lib', 'alias.js'), 'utf8'), 'export default 1;\n');
  });

  test('hostile archives fail with an ArchiveError and leave nothing behind', async () => {
    const escapeName = `hearth-escape-${randomBytes(6).toString('hex')}.txt`;
    for (const [i, sample] of hostileCorpus(escapeName).entries()) {
      if (sample.error !== 'InvalidZipFileException') continue;
      const dir = join(root, 'unpacked', `hostile-${i}`);
      await assert.rejects(
        unpackArchive(await archive(sample.zip, `hostile-${i}`), dir),
        ArchiveError,
        sample.what,
      );
      assert.equal(
        await lstat(dir).catch(() => undefined),
        undefined,
        `${sample.what}: the half-unpacked directory is removed`,
      );
    }
    assert.equal(existsSync(join(root, 'unpacked', escapeName)), false);
    assert.equal(existsSync(join(root, escapeName)), false);
    assert.equal(existsSync(join('/tmp', escapeName)), false);
  });

  test('a sha256 mismatch names the expected and the actual hash', async () => {
    const zip = await zipOf({ 'index.mjs': 'export const handler = async () => 1;' });
    const good = await archive(zip, 'mismatch');
    const expected = 'f'.repeat(64);
    await assert.rejects(
      unpackArchive({ url: good.url, sha256: expected }, join(root, 'mismatch')),
      (error: Error) => {
        assert.ok(error instanceof ArchiveError);
        assert.match(error.message, new RegExp(`${good.sha256}.*${expected}`));
        return true;
      },
    );
  });
});
