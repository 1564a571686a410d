import type { FunctionDetails, FunctionSpec, InstanceEndpoint } from '@hearth/api';

/** The details of a Function (pure: its spec, the revision being served, the instances known). */
export function functionDetails(
  name: string,
  spec: FunctionSpec,
  servedRevision: string | undefined,
  instances: readonly InstanceEndpoint[],
): FunctionDetails {
  const counts = { ready: 0, starting: 0, draining: 0 };
  for (const instance of instances) {
    if (instance.draining || (instance.ready && instance.revision !== servedRevision)) counts.draining++;
    else if (instance.ready) counts.ready++;
    else counts.starting++;
  }
  const { reserved, perInstance, perRuntime } = spec.concurrency;
  return {
    name,
    concurrency: { perInstance, perRuntime, ...(reserved !== undefined ? { reserved } : {}) },
    scaling: spec.scaling,
    instances: counts,
  };
}
