/**
 * Built-ins the shim needs only once its runtimes are spawned: node:crypto (request and trace
 * ids) and node:fs/promises (wiping /tmp, cleaning up). Loading the two takes 2-5 ms here, and
 * whatever the shim loads before the spawn is on every cold start, so they are loaded at first
 * use; shim-main loads them right after the spawn, while the runtimes boot, so that the first
 * call does not wait for them either.
 */
export function nodeCrypto(): typeof import('node:crypto') {
  return process.getBuiltinModule('node:crypto');
}

export function fsPromises(): typeof import('node:fs/promises') {
  return process.getBuiltinModule('node:fs/promises');
}

export function loadDeferredBuiltins(): void {
  nodeCrypto();
  fsPromises();
}
