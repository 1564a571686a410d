import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CodeArchiveLimits,
  symlinkTargetProblem,
  throughSymlinkProblem,
  zipEntryKind,
  zipEntryPath,
  zipEntrySizeProblem,
} from './code-archive.js';

test('entry paths inside the root are split into their parts', () => {
  assert.deepEqual(zipEntryPath('index.mjs'), { parts: ['index.mjs'] });
  assert.deepEqual(zipEntryPath('./node_modules/a/b.js'), { parts: ['node_modules', 'a', 'b.js'] });
  assert.deepEqual(zipEntryPath('lib/'), { parts: ['lib'] });
});

test('entry paths that would land outside the root are refused, naming the entry', () => {
  for (const [name, words] of [
    ['../evil.js', 'outside'],
    ['a/../../evil.js', 'outside'],
    ['/etc/passwd', 'absolute'],
    ['C:/x', 'absolute'],
    ['a\\..\\x', 'backslash'],
    ['', 'empty'],
    ['./', 'empty'],
  ] as const) {
    const result = zipEntryPath(name);
    assert.ok('problem' in result, name);
    assert.match(result.problem, new RegExp(words), name);
  }
});

test('entry kinds come from the Unix mode, directories also from a trailing slash', () => {
  assert.equal(zipEntryKind({ name: 'a', unixMode: 0o120777 }), 'symlink');
  assert.equal(zipEntryKind({ name: 'a/', unixMode: 0 }), 'directory');
  assert.equal(zipEntryKind({ name: 'a', unixMode: 0o100755 }), 'file');
  assert.equal(zipEntryKind({ name: 'a', unixMode: 0 }), 'file');
});

test('an entry inflating more than the ratio limit is a bomb; small or honest entries are not', () => {
  const mb = 1024 * 1024;
  assert.match(
    zipEntrySizeProblem({ name: 'z', compressedSize: 10_000, uncompressedSize: 100 * mb, unixMode: 0 }) ?? '',
    /zip bomb/,
  );
  assert.equal(
    zipEntrySizeProblem({ name: 'z', compressedSize: 10, uncompressedSize: 100_000, unixMode: 0 }),
    undefined,
  );
  assert.equal(
    zipEntrySizeProblem({ name: 'z', compressedSize: mb, uncompressedSize: 5 * mb, unixMode: 0 }),
    undefined,
  );
  assert.match(
    zipEntrySizeProblem({
      name: 'z',
      compressedSize: CodeArchiveLimits.unzippedBytes,
      uncompressedSize: CodeArchiveLimits.unzippedBytes + 1,
      unixMode: 0,
    }) ?? '',
    /more than 262144000/,
  );
});

test('symlinks must resolve inside the root without passing through another symlink', () => {
  const none = new Set<string>();
  assert.equal(symlinkTargetProblem(['node_modules', '.bin', 'tool'], '../tool/cli.js', none), undefined);
  assert.match(symlinkTargetProblem(['link'], '../outside', none) ?? '', /outside the archive's root/);
  assert.match(symlinkTargetProblem(['a', 'b', 'link'], '../../../x', none) ?? '', /outside/);
  assert.match(symlinkTargetProblem(['link'], '/etc/passwd', none) ?? '', /absolute path/);
  // d/up -> .. is the root itself, harmless alone; d/out -> up/.. would climb through it.
  const links = new Set(['d/up', 'd/out']);
  assert.equal(symlinkTargetProblem(['d', 'up'], '..', links), undefined);
  assert.match(
    symlinkTargetProblem(['d', 'out'], 'up/..', links) ?? '',
    /through another symlink \("d\/up"\)/,
  );
});

test('an entry inside a symlink of the archive is refused', () => {
  assert.match(throughSymlinkProblem(['lib', 'x.js'], new Set(['lib'])) ?? '', /inside the symlink "lib"/);
  assert.equal(throughSymlinkProblem(['lib', 'x.js'], new Set(['other'])), undefined);
});
