#!/usr/bin/env node
// Copies one workspace (runtime-shim, gateway or controller) with its built dist/ and the
// production closure of its dependencies into <out>/opt/hearth/<workspace>, laid out as Node's
// resolver expects (a node_modules next to it). Workspace packages (@hearth/api) are copied as
// real folders, not the symlinks npm puts in the repository's node_modules.
//
//   node images/bundle.mjs <workspace> <out>
//
// Used by the Containerfiles' build stage and by images/build.sh; run `npm run build` first.
import { cpSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const [workspace, out] = process.argv.slice(2);
if (!workspace || !out) {
  console.error('usage: node images/bundle.mjs <workspace> <out>');
  process.exit(2);
}
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pkgDir = join(root, workspace);
const target = resolve(out, 'opt/hearth', workspace);
const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));

// Third-party packages are copied whole (their `main` may live anywhere), minus their CI files.
const skip = (rel) => /(^|\/)\.github$/.test(rel);

function copyPackage(from, to, own) {
  mkdirSync(to, { recursive: true });
  if (own) {
    cpSync(join(from, 'package.json'), join(to, 'package.json'));
    for (const dir of ['dist', 'runtimes']) {
      if (existsSync(join(from, dir)))
        cpSync(join(from, dir), join(to, dir), {
          recursive: true,
          filter: (s) =>
            !/\.(tsbuildinfo|test\.js|test\.js\.map|test\.d\.ts)$/.test(s) && !/__pycache__/.test(s),
        });
    }
  } else {
    cpSync(from, to, {
      recursive: true,
      dereference: true,
      filter: (s) => !s.slice(from.length).includes('/node_modules/') && !skip(s.slice(from.length)),
    });
  }
}

/** Finds a dependency the way Node does: node_modules folders from `fromDir` up to the root. */
function locate(name, fromDir) {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return realpathSync(candidate);
    if (dir === dirname(dir)) return undefined;
  }
}

rmSync(target, { recursive: true, force: true });
copyPackage(pkgDir, target, true);
// Flat layout: the first version found for a name wins, as a hoisted npm install has it. A
// nested copy is kept where a package needs a different version than the hoisted one.
const placed = new Map();
const queue = [{ dir: pkgDir, into: target }];
while (queue.length) {
  const { dir, into } = queue.shift();
  const manifest = readJson(join(dir, 'package.json'));
  const deps = { ...manifest.dependencies, ...manifest.optionalDependencies };
  for (const name of Object.keys(deps)) {
    const found = locate(name, dir);
    if (!found) {
      if (manifest.optionalDependencies?.[name]) continue;
      throw new Error(`${manifest.name}: dependency ${name} is not installed (run npm ci)`);
    }
    const own = found.startsWith(root + '/') && !found.includes('/node_modules/');
    const version = readJson(join(found, 'package.json')).version;
    const hoisted = placed.get(name);
    let dest;
    if (!hoisted) {
      dest = join(target, 'node_modules', name);
      placed.set(name, { version, dest });
    } else if (hoisted.version === version) {
      continue;
    } else {
      dest = join(into, 'node_modules', name);
      if (existsSync(dest)) continue;
    }
    copyPackage(found, dest, own);
    queue.push({ dir: found, into: dest });
  }
}
console.log(`${workspace}: ${placed.size} packages in ${target}`);
