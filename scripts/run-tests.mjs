// Runs every compiled test file (`*.test.js` under a workspace's dist/) with Node's test runner.
// Arguments narrow the run to files whose path contains one of them.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';

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
// The runtime shim runs as bundles of what tsc wrote (runtime-shim/build.mjs): made anew, so that
// the tests run the code just compiled.
execFileSync(process.execPath, [join('runtime-shim', 'build.mjs')], { stdio: 'inherit' });
// The single-node cluster test takes the machine over for minutes; the timing checks of the others
// (a runtime killed within 100 ms of its deadline) must not run beside it, so it runs after them.
const alone = files.filter((f) => f.includes(join('cluster', 'e2e.test.js')));
const together = files.filter((f) => !alone.includes(f));
const totals = { passed: 0, failed: 0 };
let status = 0;
for (const group of [together, alone]) {
  if (group.length === 0) continue;
  const child = spawn(process.execPath, ['--test', '--test-concurrency=2', ...passThrough, ...group], {
    stdio: ['inherit', 'pipe', 'inherit'],
  });
  // Streamed as it comes; only the run's own summary lines (not indented) are counted.
  let tail = '';
  child.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    tail = (tail + chunk.toString()).slice(-4096);
  });
  const code = await new Promise((resolve) => child.on('close', resolve));
  totals.passed += Number(/^# pass (\d+)$/m.exec(tail)?.[1] ?? 0);
  totals.failed += Number(/^# fail (\d+)$/m.exec(tail)?.[1] ?? 0);
  if (code !== 0) status = code ?? 1;
}
if (alone.length > 0 && together.length > 0) console.log(`${totals.passed} passed, ${totals.failed} failed`);
process.exit(status);
