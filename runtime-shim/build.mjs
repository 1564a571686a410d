#!/usr/bin/env node
// Bundles what `tsc -b` wrote into dist/ into the files a cold start loads (`npm run build` runs
// both; so do `npm test`, `npm run bench` and scripts/run-tests.mjs):
//
//   dist/main.js                       the shim's process (from dist/shim-main.js), one ES module
//   dist/vendor/pino.js                pino, imported by main.js once the runtimes are spawned
//   dist/runtimes/nodejs/bootstrap.cjs the Node.js runtime (from bootstrap.js), one CommonJS file
//
// One file each instead of about twenty modules resolved and read one by one, and a CommonJS
// runtime, which Node starts faster than an ES module (docs/benchmarks.md has the numbers).
//
// main.js refuses to start when dist/ was built again by tsc after it was bundled: it would run
// the code of the earlier build. `--clean` removes the bundles (`npm run clean`).
import { existsSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const packageDir = dirname(fileURLToPath(import.meta.url));
const dist = join(packageDir, 'dist');
const outputs = {
  main: join(dist, 'main.js'),
  pino: join(dist, 'vendor', 'pino.js'),
  nodeRuntime: join(dist, 'runtimes', 'nodejs', 'bootstrap.cjs'),
};

if (process.argv.includes('--clean')) {
  for (const file of Object.values(outputs)) rmSync(file, { force: true });
  rmSync(dirname(outputs.pino), { recursive: true, force: true });
  process.exit(0);
}

const entry = join(dist, 'shim-main.js');
if (!existsSync(entry)) {
  console.error(`${relative(process.cwd(), entry)} is missing: run "npx tsc -b" first (or "npm run build")`);
  process.exit(1);
}

// The TypeScript builds whose output goes into main.js: runtime-shim's and @hearth/api's. tsc
// writes their build info whenever it builds them again.
const buildInfos = [join(dist, '.tsbuildinfo'), join(packageDir, '..', 'api', 'dist', '.tsbuildinfo')];
const built = Object.fromEntries(
  buildInfos
    .filter((file) => existsSync(file))
    .map((file) => {
      const { size, mtimeMs } = statSync(file);
      return [relative(dist, file), [size, mtimeMs]];
    }),
);
// Checked where the build info is (a repository: two stat calls); an installed shim has none
// (images/bundle.mjs leaves it out).
const staleCheck = `import { statSync as __stat } from 'node:fs';
for (const [__file, [__size, __mtimeMs]] of Object.entries(${JSON.stringify(built)})) {
  const __info = __stat(new URL(__file, import.meta.url), { throwIfNoEntry: false });
  if (__info && (__info.size !== __size || __info.mtimeMs !== __mtimeMs)) {
    process.stderr.write(\`hearth-shim: \${new URL(__file, import.meta.url).pathname} changed since this file was bundled: run "npm run build"\\n\`);
    process.exit(2);
  }
}`;
// pino and its dependencies are CommonJS: their require() of Node's modules needs a require.
const requireForCommonJs = `import { createRequire as __createRequire } from 'node:module';
const require = __createRequire(import.meta.url);`;

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  absWorkingDir: packageDir,
};
await Promise.all([
  build({
    ...common,
    format: 'esm',
    entryPoints: [entry],
    outfile: outputs.main,
    banner: { js: staleCheck },
    plugins: [
      {
        name: 'pino-apart',
        setup(esbuild) {
          esbuild.onResolve({ filter: /^pino$/ }, () => ({ path: './vendor/pino.js', external: true }));
        },
      },
    ],
  }),
  build({
    ...common,
    format: 'esm',
    entryPoints: ['pino'],
    outfile: outputs.pino,
    banner: { js: requireForCommonJs },
  }),
  build({
    ...common,
    format: 'cjs',
    entryPoints: [join(dist, 'runtimes', 'nodejs', 'bootstrap.js')],
    outfile: outputs.nodeRuntime,
    // handler.ts resolves packages relative to itself.
    define: { 'import.meta.url': '__importMetaUrl' },
    // The directive first: esbuild's own "use strict" comes after the banner, where it is no directive.
    banner: {
      js: `"use strict";\nconst __importMetaUrl = require('node:url').pathToFileURL(__filename).href;`,
    },
  }),
]);
