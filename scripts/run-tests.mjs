// Runs every compiled test file (`*.test.js` under a workspace's dist/) with Node's test runner.
// Arguments narrow the run to files whose path contains one of them.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const workspaces = ['api', 'runtime-shim', 'gateway', 'controller', 'cli', 'test', 'bench'];
const filters = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const passThrough = process.argv.slice(2).filter((a) => a.startsWith('--'));

function find(dir) {
  let out = [];
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const entry of entries) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out = out.concat(find(path));
    else if (entry.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const files = workspaces
  .flatMap((w) => find(join(w, 'dist')))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error('no test files found: run "npx tsc -b" first');
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...passThrough, ...files], {
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
