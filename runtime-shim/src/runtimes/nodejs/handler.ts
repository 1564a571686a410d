/**
 * Finds and loads the function's handler the way AWS's Node.js runtime does.
 *
 * `_HANDLER` is `<dir/>module.export[.nested...]`: the module is looked up in LAMBDA_TASK_ROOT as
 * `module.js`, `module.mjs` or `module.cjs` (a `.js` file is ESM or CommonJS after its nearest
 * package.json, as Node decides), then as a package in node_modules. It is loaded with import(),
 * which takes both module systems.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RuntimeError } from './errors.js';

export type Handler = (
  event: unknown,
  context: object,
  callback: (error?: unknown, result?: unknown) => void,
) => unknown;

interface HandlerName {
  /** Directory part, relative to the task root (may be empty). */
  directory: string;
  module: string;
  /** The export, with dots for nested properties (`obj.fn`). */
  exportPath: string[];
}

export function parseHandlerName(handler: string): HandlerName {
  const slash = handler.lastIndexOf('/');
  const directory = handler.slice(0, slash + 1);
  const match = /^([^.]+)\.(.+)$/.exec(handler.slice(slash + 1));
  if (!match) throw new RuntimeError('Runtime.MalformedHandlerName', `Bad handler ${handler}`);
  return { directory, module: match[1]!, exportPath: match[2]!.split('.') };
}

/** The file a module name refers to; falls back to a package resolved from node_modules. */
function locateModule(taskRoot: string, name: HandlerName): string {
  const base = resolve(taskRoot, name.directory, name.module);
  for (const extension of ['.js', '.mjs', '.cjs']) {
    if (existsSync(base + extension)) return base + extension;
  }
  // Throws MODULE_NOT_FOUND ("Cannot find module 'index'"), reported as Runtime.ImportModuleError.
  return createRequire(import.meta.url).resolve(name.module, {
    paths: [resolve(taskRoot, name.directory), taskRoot],
  });
}

function isModuleNotFound(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND';
}

/** Loads the module and returns the handler function, or throws the matching init error. */
export async function loadHandler(taskRoot: string, handler: string): Promise<Handler> {
  const name = parseHandlerName(handler);
  let loaded: Record<string, unknown>;
  try {
    const file = locateModule(taskRoot, name);
    loaded = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    // A CommonJS module's exports are its `default`; Node copies only the names it can detect
    // statically, so `module.exports = build()` needs the lookup to go through `default`.
    if (!(name.exportPath[0]! in loaded) && typeof loaded.default === 'object' && loaded.default !== null) {
      const fromDefault = loaded.default as Record<string, unknown>;
      if (name.exportPath[0]! in fromDefault) loaded = fromDefault;
    }
  } catch (error) {
    if (error instanceof SyntaxError)
      throw new RuntimeError('Runtime.UserCodeSyntaxError', String(error), error);
    if (isModuleNotFound(error)) throw new RuntimeError('Runtime.ImportModuleError', String(error), error);
    // Anything else the module throws while loading is reported as itself, as on AWS.
    throw error;
  }
  let target: unknown = loaded;
  for (const key of name.exportPath) {
    target =
      typeof target === 'object' || typeof target === 'function'
        ? (target as Record<string, unknown> | null)?.[key]
        : undefined;
  }
  if (typeof target !== 'function') {
    throw new RuntimeError('Runtime.HandlerNotFound', `${handler} is undefined or not exported`);
  }
  return target as Handler;
}
