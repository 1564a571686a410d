/**
 * Keeps Node.js's code cache for its own modules in use while the runtime starts.
 *
 * The runtime runs with --max-old-space-size, Lambda's heap limit (runtime-command.ts). V8 takes
 * the code cache Node.js ships for its built-in modules only while every V8 flag has its default
 * value: with the flag set, each built-in module the runtime loads (net, the streams, the ES
 * module loader: some forty) is compiled from source, 10 to 15 ms of every cold start. The heap's
 * limit is fixed when V8 starts, and V8 reads the flag again only when another isolate is made (a
 * worker thread). So the flag goes back to its default here, before the runtime loads anything
 * else, and gets its value again (startFunctionCode) before any of the function's code runs: what
 * the function sees is unchanged.
 *
 * Left alone when NODE_OPTIONS is set: its flags may have run code already or set the heap limit
 * themselves.
 */
import { NODE_HEAP_LIMIT_FLAG } from '../launch-protocol.js';

type SetFlags = (flags: string) => void;

/**
 * V8's setFlagsFromString. node:v8 loads the streams, so with the heap flag still set, loading it
 * compiles them from source: 7-10 ms, against under 1 ms for the binding node:v8 calls. That
 * binding is reached through process.binding, which is deprecated (DEP0111) and warns once about
 * it: the warning is kept out of the function's log (process.noDeprecation while it is taken).
 * In a Node.js without it, node:v8.
 */
function v8SetFlags(): SetFlags {
  const legacy = process as unknown as { binding(name: 'v8'): { setFlagsFromString?: unknown } };
  const quiet = process.noDeprecation;
  process.noDeprecation = true;
  try {
    const binding = legacy.binding('v8');
    if (typeof binding.setFlagsFromString === 'function') return binding.setFlagsFromString as SetFlags;
  } catch {
    // not in this Node.js
  } finally {
    process.noDeprecation = quiet;
  }
  return process.getBuiltinModule('node:v8').setFlagsFromString;
}

const heapLimitFlag = process.env.NODE_OPTIONS
  ? undefined
  : process.execArgv.find((arg) => arg.startsWith(`${NODE_HEAP_LIMIT_FLAG}=`));
const setFlags = heapLimitFlag ? v8SetFlags() : undefined;
setFlags?.(`${NODE_HEAP_LIMIT_FLAG}=0`);

/**
 * Runs the module loader once over two empty modules of the runtime's own (one ES module, one
 * CommonJS), so that the parts of it the function's import needs are compiled from the code
 * cache too; then gives the heap flag its value again.
 */
export async function startFunctionCode(): Promise<void> {
  if (!heapLimitFlag || !setFlags) return;
  try {
    await import(new URL('./warm-up.mjs', import.meta.url).href);
    await import(new URL('./warm-up.cjs', import.meta.url).href);
  } finally {
    setFlags(heapLimitFlag);
  }
}
