/**
 * Built-ins the shim needs only once its runtimes are spawned: node:crypto (request and trace
 * ids) and node:fs/promises (wiping /tmp, cleaning up). Loading the two takes 2-5 ms here, and
 * whatever the shim loads before the spawn is on every cold start, so they are loaded at first
 * use; shim-main loads them right after the spawn, while the runtimes boot, so that the first
 * call does not wait for them either. Kept once loaded: a call may ask for them (a request id of
 * its own, the size of a /tmp directory), and process.getBuiltinModule costs 200 ns a time.
 */
let crypto: typeof import('node:crypto') | undefined;
let promises: typeof import('node:fs/promises') | undefined;

export function nodeCrypto(): typeof import('node:crypto') {
  return (crypto ??= process.getBuiltinModule('node:crypto'));
}

export function fsPromises(): typeof import('node:fs/promises') {
  return (promises ??= process.getBuiltinModule('node:fs/promises'));
}

export function loadDeferredBuiltins(): void {
  nodeCrypto();
  fsPromises();
}
