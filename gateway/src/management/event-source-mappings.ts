import {
  API_GROUP,
  API_VERSION,
  EventSourceLimits,
  functionArn,
  validateEventSourceMappingSpec,
  type EventSourceMappingResource,
  type EventSourceMappingSpec,
  type EventSourceMappingStatus,
} from '@hearth/api';
import { GatewayError } from '../core/errors.js';
import { parseFunctionReference } from '../http/invoke-request.js';
import {
  Annotations,
  MANAGED_BY,
  constraint,
  destinationArn,
  integerIn,
  objectBody,
  parseDestination,
  type AccountContext,
} from './mapping.js';

/**
 * Lambda's EventSourceMapping API over EventSourceMapping resources: request bodies to specs,
 * resources (and the controller's status) to EventSourceMappingConfiguration. Pure; the routes
 * do the I/O.
 */

/** An EventSourceMapping as the management API sees it. */
export interface MappingRecord {
  resource: EventSourceMappingResource;
  /** What the controller reports (Redis in process mode, the resource's status on Kubernetes). */
  status?: EventSourceMappingStatus;
  /** Where it is declared, for messages. */
  source: string;
  /** Whether the API wrote it, and so may change or delete it. */
  managed: boolean;
}

/** Where EventSourceMappings live: manifest files (`hearth dev`) or Kubernetes resources. */
export interface MappingBackend {
  list(): Promise<MappingRecord[]>;
  get(name: string): Promise<MappingRecord | undefined>;
  create(resource: EventSourceMappingResource): Promise<void>;
  replace(resource: EventSourceMappingResource): Promise<void>;
  delete(name: string): Promise<void>;
}

const invalid = (message: string) => new GatewayError('InvalidParameterValueException', message);

/** `arn:hearth:redis:<region>:<account>:stream/<key>`: a stream on Hearth's own Redis. */
const REDIS_STREAM_ARN = /^arn:hearth:redis:[^:]*:[^:]*:stream\/(.+)$/;

/**
 * The source an EventSourceArn names. Only Hearth's Redis streams fit in an ARN: a NATS source
 * needs its server's URL, and AWS's own services do not exist here.
 */
export function parseEventSourceArn(value: unknown): EventSourceMappingSpec['source'] {
  if (typeof value !== 'string' || value === '')
    throw constraint(value, 'eventSourceArn', 'Member must be a non-empty string');
  const redis = REDIS_STREAM_ARN.exec(value);
  if (redis) {
    if (redis[1]!.length > 256)
      throw constraint(value, 'eventSourceArn', 'the stream key must be at most 256 characters');
    return { redisStream: { stream: redis[1]! } };
  }
  if (value.startsWith('arn:hearth:nats:')) {
    throw invalid(
      `EventSourceArn ${value}: a NATS JetStream source needs its server's URL, which an ARN cannot carry; declare it in an EventSourceMapping resource (spec.source.nats) instead.`,
    );
  }
  const service = /^arn:aws[a-zA-Z-]*:([a-z0-9-]+):/.exec(value)?.[1];
  throw invalid(
    `EventSourceArn ${value}: ${service ? `${service} is not an event source Hearth can read` : 'is not an ARN Hearth knows'}; use a Redis stream, arn:hearth:redis:<region>:<account>:stream/<key>.`,
  );
}

/** The ARN a mapping's source is shown with. Only the Redis stream one can be created through the API. */
export function eventSourceArnOf(resource: EventSourceMappingResource, context: AccountContext): string {
  const { source } = resource.spec;
  const where = `${context.region}:${context.accountId}`;
  if (source.redisStream) return `arn:hearth:redis:${where}:stream/${source.redisStream.stream}`;
  if (source.nats) return `arn:hearth:nats:${where}:stream/${source.nats.stream}`;
  if (source.schedule) return `arn:hearth:events:${where}:rule/${resource.metadata.name}`;
  if (source.http) return `arn:hearth:http:${where}:route/${resource.metadata.name}`;
  return `arn:aws:s3:::${source.bucket?.bucket ?? '*'}`;
}

/** Fields of Lambda's request that have no meaning here: refused rather than silently dropped. */
const UNSUPPORTED = [
  'Queues',
  'Topics',
  'SourceAccessConfigurations',
  'SelfManagedEventSource',
  'SelfManagedKafkaEventSourceConfig',
  'AmazonManagedKafkaEventSourceConfig',
  'DocumentDBEventSourceConfig',
  'FilterCriteria',
  'TumblingWindowInSeconds',
  'ScalingConfig',
  'KMSKeyArn',
  'MetricsConfig',
  'ProvisionedPollerConfig',
];

/** Lambda's request field for each spec field, for the messages of cross-field problems. */
const LAMBDA_FIELDS: Record<string, string> = {
  'spec.functionName': 'FunctionName',
  'spec.batchSize': 'BatchSize',
  'spec.maximumBatchingWindowInSeconds': 'MaximumBatchingWindowInSeconds',
  'spec.startingPosition': 'StartingPosition',
  'spec.startingPositionTimestamp': 'StartingPositionTimestamp',
  'spec.maximumRetryAttempts': 'MaximumRetryAttempts',
  'spec.maximumRecordAgeInSeconds': 'MaximumRecordAgeInSeconds',
  'spec.parallelizationFactor': 'ParallelizationFactor',
  'spec.functionResponseTypes': 'FunctionResponseTypes',
  'spec.destinationConfig.onFailure': 'DestinationConfig.OnFailure',
};

function booleanField(body: Record<string, unknown>, field: string): boolean | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw constraint(value, field, 'Member must be a boolean');
  return value;
}

/** A function name or ARN; mappings invoke `$LATEST`, the only version Hearth has. */
export function mappingFunctionName(value: unknown): string {
  if (typeof value !== 'string' || value === '')
    throw constraint(value, 'FunctionName', 'Member must be a non-empty string');
  const reference = parseFunctionReference(value, undefined);
  if (reference.qualifier !== undefined && reference.qualifier !== '$LATEST')
    throw invalid(`FunctionName ${value}: only $LATEST exists on Hearth (no versions or aliases).`);
  return reference.name;
}

/** The fields Create and Update share, written into a spec under construction. */
function applyFields(spec: Record<string, unknown>, body: Record<string, unknown>): void {
  for (const field of UNSUPPORTED) {
    if (body[field] !== undefined && body[field] !== null)
      throw invalid(`${field} is not supported by Hearth's event source mappings.`);
  }
  if (body.FunctionName !== undefined) spec.functionName = mappingFunctionName(body.FunctionName);
  const enabled = booleanField(body, 'Enabled');
  if (enabled !== undefined) spec.enabled = enabled;
  const limits = EventSourceLimits;
  if (body.BatchSize !== undefined)
    spec.batchSize = integerIn(body.BatchSize, 'batchSize', limits.batchSize.min, limits.batchSize.max);
  if (body.MaximumBatchingWindowInSeconds !== undefined)
    spec.maximumBatchingWindowInSeconds = integerIn(
      body.MaximumBatchingWindowInSeconds,
      'maximumBatchingWindowInSeconds',
      limits.maximumBatchingWindowInSeconds.min,
      limits.maximumBatchingWindowInSeconds.max,
    );
  if (body.MaximumRetryAttempts !== undefined)
    spec.maximumRetryAttempts = integerIn(
      body.MaximumRetryAttempts,
      'maximumRetryAttempts',
      limits.maximumRetryAttempts.min,
      limits.maximumRetryAttempts.max,
    );
  if (body.MaximumRecordAgeInSeconds !== undefined) {
    const age = integerIn(
      body.MaximumRecordAgeInSeconds,
      'maximumRecordAgeInSeconds',
      -1,
      limits.maximumRecordAgeInSeconds.max,
    );
    if (age !== -1 && age < limits.maximumRecordAgeInSeconds.min)
      throw constraint(
        age,
        'maximumRecordAgeInSeconds',
        `Member must be -1 or at least ${limits.maximumRecordAgeInSeconds.min}`,
      );
    spec.maximumRecordAgeInSeconds = age;
  }
  if (body.ParallelizationFactor !== undefined)
    spec.parallelizationFactor = integerIn(
      body.ParallelizationFactor,
      'parallelizationFactor',
      limits.parallelizationFactor.min,
      limits.parallelizationFactor.max,
    );
  const bisect = booleanField(body, 'BisectBatchOnFunctionError');
  if (bisect !== undefined) spec.bisectBatchOnFunctionError = bisect;
  if (body.FunctionResponseTypes !== undefined) {
    const types = body.FunctionResponseTypes;
    if (!Array.isArray(types) || types.some((t) => t !== 'ReportBatchItemFailures'))
      throw constraint(
        types,
        'functionResponseTypes',
        'Member must satisfy enum value set: [ReportBatchItemFailures]',
      );
    spec.functionResponseTypes = [...new Set(types)];
  }
  if (body.DestinationConfig !== undefined) {
    const config = body.DestinationConfig as { OnFailure?: { Destination?: unknown } } | null;
    const destination = config?.OnFailure?.Destination;
    spec.destinationConfig =
      destination === undefined || destination === null || destination === ''
        ? {}
        : { onFailure: parseDestination(destination, 'DestinationConfig.OnFailure.Destination') };
  }
}

/** Defaults and the CRD schema's checks; a problem left is named by Lambda's field. */
function finishSpec(spec: Record<string, unknown>): EventSourceMappingSpec {
  const result = validateEventSourceMappingSpec(spec);
  if (result.spec) return result.spec;
  const problem = result.problems[0]!;
  const field =
    Object.entries(LAMBDA_FIELDS)
      .sort(([a], [b]) => b.length - a.length)
      .find(([path]) => problem.path.startsWith(path))?.[1] ?? problem.path;
  throw invalid(`${field} ${problem.message}`);
}

export interface CreateMappingInput {
  functionName: string;
  /** The resource, named by the mapping's new UUID. */
  build(uuid: string, now: Date): EventSourceMappingResource;
}

/** CreateEventSourceMapping's body. */
export function parseCreateEventSourceMapping(raw: unknown): CreateMappingInput {
  const body = objectBody(raw);
  if (body.FunctionName === undefined) throw constraint(null, 'functionName', 'Member must not be null');
  const spec: Record<string, unknown> = { source: parseEventSourceArn(body.EventSourceArn) };
  applyFields(spec, body);
  if (body.StartingPosition !== undefined) {
    if (!['TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP'].includes(body.StartingPosition as string))
      throw constraint(
        body.StartingPosition,
        'startingPosition',
        'Member must satisfy enum value set: [TRIM_HORIZON, LATEST, AT_TIMESTAMP]',
      );
    spec.startingPosition = body.StartingPosition;
  }
  if (body.StartingPositionTimestamp !== undefined) {
    // The SDKs send a timestamp as epoch seconds.
    const seconds = Number(body.StartingPositionTimestamp);
    if (!Number.isFinite(seconds) || seconds < 0)
      throw constraint(
        body.StartingPositionTimestamp,
        'startingPositionTimestamp',
        'Member must be a timestamp',
      );
    spec.startingPositionTimestamp = new Date(seconds * 1000).toISOString();
  }
  const tags = body.Tags;
  if (tags !== undefined && (tags === null || typeof tags !== 'object' || Array.isArray(tags)))
    throw invalid('Tags must be a map of strings.');
  const checked = finishSpec(spec);
  return {
    functionName: checked.functionName,
    build: (uuid, now) => ({
      apiVersion: `${API_GROUP}/${API_VERSION}`,
      kind: 'EventSourceMapping',
      metadata: {
        name: uuid,
        annotations: {
          [Annotations.managedBy]: MANAGED_BY,
          [Annotations.lastModified]: now.toISOString(),
          ...(tags ? { [Annotations.tags]: JSON.stringify(tags) } : {}),
        },
      },
      spec: checked,
    }),
  };
}

/** UpdateEventSourceMapping: only the fields present change; the source and its starting position stay. */
export function applyUpdateEventSourceMapping(
  resource: EventSourceMappingResource,
  raw: unknown,
  now: Date,
): EventSourceMappingResource {
  const body = objectBody(raw);
  for (const field of ['EventSourceArn', 'StartingPosition', 'StartingPositionTimestamp']) {
    if (body[field] !== undefined) throw invalid(`${field} cannot be changed: create a new mapping.`);
  }
  const spec = structuredClone(resource.spec) as unknown as Record<string, unknown>;
  applyFields(spec, body);
  return {
    ...resource,
    metadata: {
      ...resource.metadata,
      annotations: {
        ...((resource.metadata.annotations as Record<string, string> | undefined) ?? {}),
        [Annotations.lastModified]: now.toISOString(),
      },
    },
    spec: finishSpec(spec),
  };
}

/**
 * Lambda's State from what was asked and what the controller reports: Creating until it has
 * reported on the mapping (or, on Kubernetes, Updating until it has seen the latest generation),
 * Enabling/Disabling while its state lags the asked-for one, then its own state (Enabled,
 * Disabled, or Hearth's Failed with the reason).
 */
export function mappingState(
  resource: EventSourceMappingResource,
  status: EventSourceMappingStatus | undefined,
): { State: string; StateTransitionReason: string } {
  const reason = (text: string) => ({ StateTransitionReason: status?.stateReason ?? text });
  if (!status?.state) return { State: 'Creating', ...reason('USER_INITIATED') };
  const generation = resource.metadata.generation;
  if (
    generation !== undefined &&
    status.observedGeneration !== undefined &&
    status.observedGeneration < generation
  )
    return { State: 'Updating', ...reason('USER_INITIATED') };
  const wanted = resource.spec.enabled;
  if (wanted && status.state === 'Disabled') return { State: 'Enabling', ...reason('USER_INITIATED') };
  if (!wanted && (status.state === 'Enabled' || status.state === 'Creating'))
    return { State: 'Disabling', ...reason('USER_INITIATED') };
  return { State: status.state, ...reason('USER_INITIATED') };
}

/** The EventSourceMappingConfiguration Lambda answers with. */
export function toEventSourceMappingConfiguration(
  record: Pick<MappingRecord, 'resource' | 'status'>,
  context: AccountContext,
) {
  const { resource, status } = record;
  const { spec } = resource;
  const annotations = (resource.metadata.annotations as Record<string, string> | undefined) ?? {};
  const lastModified = annotations[Annotations.lastModified] ?? status?.lastModified;
  const onFailure = spec.destinationConfig.onFailure;
  return {
    UUID: resource.metadata.name,
    EventSourceMappingArn: `arn:aws:lambda:${context.region}:${context.accountId}:event-source-mapping:${resource.metadata.name}`,
    EventSourceArn: eventSourceArnOf(resource, context),
    FunctionArn: functionArn(spec.functionName, context.region, context.accountId),
    ...mappingState(resource, status),
    // Epoch seconds, as the SDKs read a timestamp.
    LastModified: lastModified ? Date.parse(lastModified) / 1000 : undefined,
    LastProcessingResult: status?.lastProcessingResult ?? 'No records processed',
    BatchSize: spec.batchSize,
    MaximumBatchingWindowInSeconds: spec.maximumBatchingWindowInSeconds,
    StartingPosition: spec.startingPosition,
    ...(spec.startingPositionTimestamp
      ? { StartingPositionTimestamp: Date.parse(spec.startingPositionTimestamp) / 1000 }
      : {}),
    MaximumRecordAgeInSeconds: spec.maximumRecordAgeInSeconds,
    BisectBatchOnFunctionError: spec.bisectBatchOnFunctionError,
    MaximumRetryAttempts: spec.maximumRetryAttempts,
    ParallelizationFactor: spec.parallelizationFactor,
    FunctionResponseTypes: spec.functionResponseTypes,
    DestinationConfig: onFailure ? { OnFailure: { Destination: destinationArn(onFailure, context) } } : {},
  };
}
