import { createHash } from 'node:crypto';
import type { FunctionSpec } from '@hearth/api';

/**
 * The parts of a spec that shape an instance. Scaling, reserved concurrency and async settings
 * are left out on purpose: changing them must not restart warm instances.
 */
export function instanceShape(spec: FunctionSpec) {
  return {
    runtime: spec.runtime,
    handler: spec.handler,
    code: spec.code,
    imageConfig: spec.imageConfig,
    memory: spec.memory,
    timeoutSeconds: spec.timeoutSeconds,
    ephemeralStorage: spec.ephemeralStorage,
    env: spec.env ?? [],
    perInstance: spec.concurrency.perInstance,
    // Left out at 1 (canonicalJson drops undefined), so revisions from before it existed stand.
    perRuntime: spec.concurrency.perRuntime > 1 ? spec.concurrency.perRuntime : undefined,
  };
}

/** JSON with object keys sorted at every level, so that key order in a manifest never matters. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The revision of a (defaulted) spec: 10 hex digits of a SHA-256 of its instance shape. Short
 * enough for object names and labels, long enough that two revisions of one function never meet.
 */
export function revisionHash(spec: FunctionSpec): string {
  return createHash('sha256')
    .update(canonicalJson(instanceShape(spec)))
    .digest('hex')
    .slice(0, 10);
}
