#!/usr/bin/env node
// Bundles what `tsc -b` wrote into dist/ into the files a cold start loads (`npm run build` runs
// both; so do `npm test`, `npm run bench` and scripts/run-tests.mjs):
//
//   dist/main.cjs                      the shim's process (from dist/shim-main.js)
//   dist/vendor/pino.cjs               pino, required by main.cjs once the runtimes are spawned
//   dist/runtimes/nodejs/bootstrap.cjs the Node.js runtime (from bootstrap.js)
//
// One file each instead of about twenty modules resolved and read one by one, and CommonJS, which
// Node starts faster than an ES module: the ES module loader is not started (docs/benchmarks.md
// has the numbers).
//
// main.cjs refuses to start when dist/ was built again by tsc after it was bundled: it would run
// the code of the earlier build. `--clean` removes the bundles (`npm run clean`).
import { existsSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const packageDir = dirname(fileURLToPath(import.meta.url));
const dist = join(packageDir, 'dist');
const outputs = {
  main: join(dist, 'main.cjs'),
  pino: join(dist, 'vendor', 'pino.cjs'),
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

// The TypeScript builds whose output goes into main.cjs: runtime-shim's and @hearth/api's. tsc
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
const staleCheck = `for (const [__file, [__size, __mtimeMs]] of Object.entries(${JSON.stringify(built)})) {
  const __path = require('node:path').join(__dirname, __file);
  const __info = require('node:fs').statSync(__path, { throwIfNoEntry: false });
  if (__info && (__info.size !== __size || __info.mtimeMs !== __mtimeMs)) {
    process.stderr.write(\`hearth-shim: \${__path} changed since this file was bundled: run "npm run build"\\n\`);
    process.exit(2);
  }
}`;
// The bundles' modules are ES modules that find files relative to themselves.
const importMetaUrl = `const __importMetaUrl = require('node:url').pathToFileURL(__filename).href;`;

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  absWorkingDir: packageDir,
};
// Each bundle starts with the directive: esbuild's own "use strict" would come after the banner,
// where it is no directive.
await Promise.all([
  build({
    ...common,
    format: 'cjs',
    entryPoints: [entry],
    outfile: outputs.main,
    define: { 'import.meta.url': '__importMetaUrl' },
    banner: { js: `"use strict";\n${importMetaUrl}\n${staleCheck}` },
    // pino's import() becomes a require() of its own bundle, next to main.cjs.
    supported: { 'dynamic-import': false },
    plugins: [
      {
        name: 'pino-apart',
        setup(esbuild) {
          esbuild.onResolve({ filter: /^pino$/ }, () => ({ path: './vendor/pino.cjs', external: true }));
        },
      },
    ],
  }),
  build({
    ...common,
    format: 'cjs',
    entryPoints: ['pino'],
    outfile: outputs.pino,
  }),
  build({
    ...common,
    format: 'cjs',
    entryPoints: [join(dist, 'runtimes', 'nodejs', 'bootstrap.js')],
    outfile: outputs.nodeRuntime,
    // handler.ts resolves packages relative to itself.
    define: { 'import.meta.url': '__importMetaUrl' },
    banner: { js: `"use strict";\n${importMetaUrl}` },
  }),
]);
