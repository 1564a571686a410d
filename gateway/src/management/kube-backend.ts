import { ApiException, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import {
  API_GROUP,
  API_VERSION,
  type EventSourceMappingResource,
  type FunctionResource,
  type FunctionStatus,
} from '@hearth/api';
import { GatewayError } from '../core/errors.js';
import type { FunctionBackend, FunctionRecord } from './backend.js';
import type { MappingBackend, MappingRecord } from './event-source-mappings.js';
import { Annotations, MANAGED_BY, parseSettledAt, updateDigest, type ServedState } from './mapping.js';

/** The Function CRD's plural (controller/src/crd.ts generates the CRD with it). */
const PLURAL = 'functions';
/** Ready=False reasons that mean "not yet", not "failed". */
const TRANSIENT_REASONS = new Set(['PoolNotReady', 'Reconciling']);

/**
 * What the controller serves, read from a Function's status: the asked-for spec once the status
 * speaks of the current generation (or of one that differs only in settings applied in place);
 * before that, an older spec (if a revision ever served) or nothing at all (Pending).
 */
export function servedFromStatus(resource: FunctionResource): ServedState | undefined {
  const status: FunctionStatus | undefined = resource.status;
  const ready = status?.conditions?.find((c) => c.type === 'Ready');
  if (!status || !ready) return undefined;
  const current =
    status.observedGeneration !== undefined &&
    (status.observedGeneration === resource.metadata.generation ||
      settledBefore(resource, status.observedGeneration));
  const lastModified = ready.lastTransitionTime;
  // A pool short of instances while one of this revision already serves is scaling, not updating:
  // Lambda never refuses an update because its function is scaling up.
  const servingCurrent =
    ready.status === 'True' || (ready.reason === 'PoolNotReady' && (status.instances?.ready ?? 0) > 0);
  if (current && servingCurrent) return { state: 'Active', spec: resource.spec, lastModified };
  if (current && ready.status === 'False' && !TRANSIENT_REASONS.has(ready.reason)) {
    return {
      state: 'Failed',
      stateReason: `${ready.reason}: ${ready.message ?? ''}`.trim(),
      spec: resource.spec,
      lastModified,
    };
  }
  return status.revision ? { state: 'Active', lastModified } : undefined;
}

/**
 * Whether the controller has seen a generation with the same updatable parts as this one, after
 * which only settings Lambda applies in place changed (see Annotations.settledAt).
 */
function settledBefore(resource: FunctionResource, observedGeneration: number): boolean {
  const annotations = (resource.metadata.annotations ?? {}) as Record<string, string>;
  const settled = parseSettledAt(annotations[Annotations.settledAt]);
  return (
    settled !== undefined &&
    observedGeneration >= settled.generation &&
    settled.digest === updateDigest(resource.spec)
  );
}

/**
 * One kind of `hearth.dev/v1alpha1` resource in one namespace, as the management API keeps it.
 * Changes replace the whole object with the resourceVersion it was read at, so a change made
 * meanwhile (by kubectl, or another gateway) is refused rather than overwritten.
 */
abstract class NamespacedResources<R extends { metadata: { name: string }; status?: unknown }, Rec> {
  private readonly api: CustomObjectsApi;

  constructor(
    protected readonly namespace: string,
    private readonly kind: { plural: string; name: 'Function' | 'EventSourceMapping'; noun: string },
    kubeConfig?: KubeConfig,
  ) {
    const kc = kubeConfig ?? new KubeConfig();
    if (!kubeConfig) kc.loadFromDefault();
    this.api = kc.makeApiClient(CustomObjectsApi);
  }

  protected abstract record(resource: R): Rec;

  private get ref() {
    return { group: API_GROUP, version: API_VERSION, plural: this.kind.plural, namespace: this.namespace };
  }

  async list(): Promise<Rec[]> {
    const records: Rec[] = [];
    let token: string | undefined;
    do {
      const page = (await this.api.listNamespacedCustomObject({
        ...this.ref,
        limit: 500,
        ...(token ? { _continue: token } : {}),
      })) as { items: R[]; metadata?: { _continue?: string; continue?: string } };
      records.push(...page.items.map((item) => this.record(item)));
      token = page.metadata?._continue ?? page.metadata?.continue;
    } while (token);
    return records;
  }

  async get(name: string): Promise<Rec | undefined> {
    try {
      return this.record((await this.api.getNamespacedCustomObject({ ...this.ref, name })) as R);
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return undefined;
      throw error;
    }
  }

  async create(resource: R): Promise<void> {
    try {
      await this.api.createNamespacedCustomObject({
        ...this.ref,
        body: { ...resource, metadata: { ...resource.metadata, namespace: this.namespace } },
      });
    } catch (error) {
      if (error instanceof ApiException && error.code === 409)
        throw new GatewayError(
          'ResourceConflictException',
          `${this.kind.name} already exist: ${resource.metadata.name}`,
        );
      throw rejected(error, this.kind.name);
    }
  }

  async replace(resource: R): Promise<void> {
    const { status: _status, ...body } = resource;
    try {
      await this.api.replaceNamespacedCustomObject({ ...this.ref, name: resource.metadata.name, body });
    } catch (error) {
      if (error instanceof ApiException && error.code === 409) {
        throw new GatewayError(
          'ResourceConflictException',
          `The ${this.kind.noun} ${resource.metadata.name} was changed meanwhile; read it again and retry.`,
        );
      }
      throw rejected(error, this.kind.name);
    }
  }

  async delete(name: string): Promise<void> {
    try {
      await this.api.deleteNamespacedCustomObject({ ...this.ref, name });
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return;
      throw error;
    }
  }
}

/** Functions, read back with what the controller serves of them. */
export class KubernetesFunctionBackend
  extends NamespacedResources<FunctionResource, FunctionRecord>
  implements FunctionBackend
{
  constructor(namespace: string, kubeConfig?: KubeConfig) {
    super(namespace, { plural: PLURAL, name: 'Function', noun: 'function' }, kubeConfig);
  }

  protected record(resource: FunctionResource): FunctionRecord {
    const served = servedFromStatus(resource);
    const annotations = (resource.metadata.annotations ?? {}) as Record<string, string>;
    return {
      resource,
      ...(served ? { served } : {}),
      source: `Function ${this.namespace}/${resource.metadata.name}`,
      managed: annotations[Annotations.managedBy] === MANAGED_BY,
    };
  }
}

/** The EventSourceMapping CRD's plural. */
const MAPPING_PLURAL = 'eventsourcemappings';

/** EventSourceMappings, named by their UUID; the controller reports on them in their status. */
export class KubernetesMappingBackend
  extends NamespacedResources<EventSourceMappingResource, MappingRecord>
  implements MappingBackend
{
  constructor(namespace: string, kubeConfig?: KubeConfig) {
    super(
      namespace,
      { plural: MAPPING_PLURAL, name: 'EventSourceMapping', noun: 'event source mapping' },
      kubeConfig,
    );
  }

  protected record(resource: EventSourceMappingResource): MappingRecord {
    const annotations = (resource.metadata.annotations ?? {}) as Record<string, string>;
    return {
      resource,
      ...(resource.status ? { status: resource.status } : {}),
      source: `EventSourceMapping ${this.namespace}/${resource.metadata.name}`,
      managed: annotations[Annotations.managedBy] === MANAGED_BY,
    };
  }
}

/** The API server refusing an object (its schema) is the caller's problem, said in its words. */
function rejected(error: unknown, kind = 'Function'): unknown {
  if (error instanceof ApiException && error.code === 422) {
    return new GatewayError(
      'InvalidParameterValueException',
      `The ${kind} was refused by Kubernetes: ${String((error.body as { message?: string } | undefined)?.message ?? error.message)}`,
    );
  }
  return error;
}
