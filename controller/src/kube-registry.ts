import type { V1EndpointSlice } from '@kubernetes/client-node';
import type { FunctionRoute, InstanceEndpoint } from '@hearth/api';
import { revisionObjectName, SHIM_PORT } from './kube-objects.js';
import type { RegistryWriter } from './registry.js';
import { canonicalJson } from './revision.js';

/** The label Kubernetes puts on every EndpointSlice of a Service, naming the Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** Where Functions are called by their plain name unless the controller is told otherwise. */
export const DEFAULT_FUNCTION_NAMESPACE = 'default';

/**
 * The name a Function goes by in the registry, and so at the gateway (Invoke, `/function/`, its
 * ARN, async queue, dead letters, metrics): its own name in the default namespace, where the
 * management API creates Functions; `name.namespace` in any other, as OpenFaaS names functions of
 * other namespaces. Lambda names hold no dot and a Function's name cannot either (its Service's
 * name is made from it), so two Functions never share a registry name.
 */
export function registryName(namespace: string, name: string, defaultNamespace: string): string {
  return namespace === defaultNamespace ? name : `${name}.${namespace}`;
}

/** The endpoints of one revision's Service, as registry instances (every one listed, ready or not). */
export function instancesFromSlices(
  functionName: string,
  revision: string,
  slices: V1EndpointSlice[],
): InstanceEndpoint[] {
  const out: InstanceEndpoint[] = [];
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue;
    const port = slice.ports?.find((p) => p.name === 'invoke')?.port ?? slice.ports?.[0]?.port ?? SHIM_PORT;
    for (const endpoint of slice.endpoints ?? []) {
      const address = endpoint.addresses?.[0];
      if (!address) continue;
      const host = slice.addressType === 'IPv6' ? `[${address}]` : address;
      out.push({
        id: endpoint.targetRef?.name ?? address,
        function: functionName,
        revision,
        url: `http://${host}:${port}`,
        // Kubernetes: an unknown ready condition is to be read as ready.
        ready: endpoint.conditions?.ready !== false,
        draining: endpoint.conditions?.terminating === true,
      });
    }
  }
  return out;
}

/**
 * The instances of each revision's Service, from EndpointSlices (the informer's cache of the
 * namespace), named for the registry (`routeName`).
 */
export function revisionInstances(
  slices: V1EndpointSlice[],
  functionName: string,
  routeName: string,
  revisions: string[],
): Map<string, InstanceEndpoint[]> {
  const out = new Map<string, InstanceEndpoint[]>();
  for (const revision of revisions) {
    const service = revisionObjectName(functionName, revision);
    const own = slices.filter((slice) => slice.metadata?.labels?.[SERVICE_NAME_LABEL] === service);
    out.set(revision, instancesFromSlices(routeName, revision, own));
  }
  return out;
}

/**
 * The revision calls go to: the newest once it has a ready instance (or nothing older does),
 * else the older revision still serving, so that a rollout never leaves a gap.
 */
export function servingRevision(current: string, instances: Map<string, InstanceEndpoint[]>): string {
  const serves = (r: string) => (instances.get(r) ?? []).some((i) => i.ready && !i.draining);
  if (serves(current)) return current;
  for (const [revision] of instances) if (revision !== current && serves(revision)) return revision;
  return current;
}

/**
 * Writes a function's route, only when it differs from `previous`, the route as last read from the
 * registry (lastModified moves only then).
 */
export async function writeRoute(
  registry: RegistryWriter,
  route: Omit<FunctionRoute, 'lastModified'>,
  previous: FunctionRoute | undefined,
): Promise<boolean> {
  const comparable = (r: Omit<FunctionRoute, 'lastModified'>) =>
    canonicalJson([r.name, r.revision, r.spec, r.state, r.stateReason ?? null]);
  if (previous && comparable(previous) === comparable(route)) return false;
  await registry.putRoute({ ...route, lastModified: new Date().toISOString() });
  return true;
}

/** Every instance of the function, with draining set for revisions calls no longer go to. */
export function registryInstances(
  instances: Map<string, InstanceEndpoint[]>,
  serving: string,
  current: string,
): InstanceEndpoint[] {
  const all: InstanceEndpoint[] = [];
  for (const [revision, list] of instances)
    for (const i of list)
      all.push({ ...i, draining: i.draining || (revision !== serving && revision !== current) });
  return all;
}
