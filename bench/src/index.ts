/**
 * The benchmarks' entry: `npm run bench -- <name> [options]`. Each benchmark runs Hearth side
 * by side with its peers in one run and prints a markdown table.
 */
import { main as shim } from './shim.js';
import { main as gateway } from './gateway.js';
import { main as async } from './async.js';
import { main as redisStreamMapping } from './redis-stream-mapping.js';
import { main as controllerScale } from './controller-scale.js';
import { main as scaleFromZero } from './scale-from-zero.js';

const benchmarks: Record<string, (argv: string[]) => Promise<void>> = {
  shim,
  gateway,
  async,
  'redis-stream-mapping': redisStreamMapping,
  'controller-scale': controllerScale,
  'scale-from-zero': scaleFromZero,
};

const [name, ...argv] = process.argv.slice(2);
const run = name === undefined ? undefined : benchmarks[name];
if (!run) {
  console.error(`usage: npm run bench -- <${Object.keys(benchmarks).join('|')}> [options]`);
  process.exit(2);
}
await run(argv);
