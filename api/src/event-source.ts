import { FormatRegistry, Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { API_GROUP, API_VERSION, type SpecProblem } from './function.js';

/**
 * The EventSourceMapping resource (`hearth.dev/v1alpha1`, kind EventSourceMapping, short name
 * `esm`): what invokes a function besides a direct call. Pull sources (Redis Streams, NATS
 * JetStream) are polled by the controller, which invokes the function synchronously with batches,
 * in order; push sources (schedules, HTTP routes, bucket notifications) invoke it as Lambda's
 * push sources do. The field names and limits are Lambda's CreateEventSourceMapping ones.
 */

// TypeBox knows no string formats until one is registered: without this every
// startingPositionTimestamp failed with "Unknown format 'date-time'". RFC 3339, as the CRD's.
if (!FormatRegistry.Has('date-time')) {
  FormatRegistry.Set(
    'date-time',
    (value) =>
      /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.test(value) &&
      !Number.isNaN(Date.parse(value)),
  );
}

export const EventSourceLimits = {
  batchSize: { min: 1, max: 10_000, default: 100 },
  maximumBatchingWindowInSeconds: { min: 0, max: 300, default: 0 },
  maximumRetryAttempts: { min: -1, max: 10_000, default: -1 },
  /** -1 (forever) or 60..604800. */
  maximumRecordAgeInSeconds: { min: 60, max: 604_800, default: -1 },
  parallelizationFactor: { min: 1, max: 10, default: 1 },
} as const;

const FunctionName = Type.String({
  pattern: '^[a-z0-9]([-a-z0-9]{0,62}[a-z0-9])?$',
  maxLength: 64,
  description: 'The Function invoked, in the same namespace',
});

export const ScheduleSourceSchema = Type.Object(
  {
    expression: Type.String({
      pattern: '^(cron|rate)\\(.+\\)$',
      maxLength: 256,
      description:
        'EventBridge syntax: cron(minutes hours day-of-month month day-of-week year) or rate(N minutes|hours|days); rate(N seconds) is a Hearth extension',
    }),
    timezone: Type.String({
      default: 'UTC',
      maxLength: 64,
      description: 'IANA time zone of cron expressions',
    }),
    input: Type.Optional(
      Type.Unknown({ description: 'A constant event sent instead of the Scheduled Event' }),
    ),
  },
  { additionalProperties: false },
);
export type ScheduleSource = Static<typeof ScheduleSourceSchema>;

export const RedisStreamSourceSchema = Type.Object(
  {
    stream: Type.String({ minLength: 1, maxLength: 256, description: 'The stream key' }),
    url: Type.Optional(
      Type.String({ pattern: '^rediss?://', description: "Redis holding it; default Hearth's own Redis" }),
    ),
    group: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 256,
        description: 'Consumer group; default hearth-<mapping name>',
      }),
    ),
  },
  { additionalProperties: false },
);
export type RedisStreamSource = Static<typeof RedisStreamSourceSchema>;

export const NatsSourceSchema = Type.Object(
  {
    url: Type.String({ pattern: '^nats://', description: 'nats://host:port of the NATS server' }),
    stream: Type.String({ minLength: 1, maxLength: 256, description: 'The JetStream stream' }),
    subject: Type.Optional(Type.String({ minLength: 1, description: 'Filter subject within the stream' })),
    consumer: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 256,
        description: 'Durable consumer; default hearth-<mapping name>',
      }),
    ),
  },
  { additionalProperties: false },
);
export type NatsSource = Static<typeof NatsSourceSchema>;

export const HttpSourceSchema = Type.Object(
  {
    method: Type.String({
      pattern: '^(ANY|GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS)$',
      default: 'ANY',
      description: 'HTTP method, or ANY',
    }),
    pathPrefix: Type.String({
      pattern: '^/',
      maxLength: 512,
      description: 'Requests whose path is this prefix or under it reach the function',
    }),
    auth: Type.Union([Type.Literal('gateway'), Type.Literal('none')], {
      default: 'gateway',
      description: "gateway: the gateway's API keys or SigV4, as for invoke; none: public",
    }),
  },
  { additionalProperties: false },
);
export type HttpSource = Static<typeof HttpSourceSchema>;

export const BucketSourceSchema = Type.Object(
  {
    bucket: Type.Optional(Type.String({ minLength: 1, description: 'Only this bucket; default any' })),
    events: Type.Array(Type.String({ pattern: '^s3:' }), {
      default: ['s3:ObjectCreated:*'],
      description: 'S3 event names, * as a wildcard suffix',
    }),
    prefix: Type.Optional(Type.String({ description: 'Only object keys starting with this' })),
    suffix: Type.Optional(Type.String({ description: 'Only object keys ending with this' })),
  },
  { additionalProperties: false },
);
export type BucketSource = Static<typeof BucketSourceSchema>;

export const EventSourceKinds = ['schedule', 'redisStream', 'nats', 'http', 'bucket'] as const;
export type EventSourceKind = (typeof EventSourceKinds)[number];

const Destination = Type.Object(
  {
    function: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    url: Type.Optional(Type.String({ pattern: '^https?://' })),
    stream: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  },
  { additionalProperties: false, description: 'Exactly one of function, url, stream' },
);

export const EventSourceMappingSpecSchema = Type.Object(
  {
    functionName: FunctionName,
    enabled: Type.Boolean({ default: true }),
    source: Type.Object(
      {
        schedule: Type.Optional(ScheduleSourceSchema),
        redisStream: Type.Optional(RedisStreamSourceSchema),
        nats: Type.Optional(NatsSourceSchema),
        http: Type.Optional(HttpSourceSchema),
        bucket: Type.Optional(BucketSourceSchema),
      },
      {
        additionalProperties: false,
        description: 'Exactly one of schedule, redisStream, nats, http, bucket',
      },
    ),
    // Stream (pull) settings; ignored by push sources.
    batchSize: Type.Integer({
      minimum: EventSourceLimits.batchSize.min,
      maximum: EventSourceLimits.batchSize.max,
      default: EventSourceLimits.batchSize.default,
    }),
    maximumBatchingWindowInSeconds: Type.Integer({
      minimum: EventSourceLimits.maximumBatchingWindowInSeconds.min,
      maximum: EventSourceLimits.maximumBatchingWindowInSeconds.max,
      default: EventSourceLimits.maximumBatchingWindowInSeconds.default,
    }),
    startingPosition: Type.Union(
      [Type.Literal('TRIM_HORIZON'), Type.Literal('LATEST'), Type.Literal('AT_TIMESTAMP')],
      { default: 'LATEST' },
    ),
    startingPositionTimestamp: Type.Optional(
      Type.String({ format: 'date-time', description: 'Required with AT_TIMESTAMP' }),
    ),
    maximumRetryAttempts: Type.Integer({
      minimum: EventSourceLimits.maximumRetryAttempts.min,
      maximum: EventSourceLimits.maximumRetryAttempts.max,
      default: EventSourceLimits.maximumRetryAttempts.default,
      description: '-1: retry until the records expire',
    }),
    maximumRecordAgeInSeconds: Type.Integer({
      minimum: -1,
      maximum: EventSourceLimits.maximumRecordAgeInSeconds.max,
      default: EventSourceLimits.maximumRecordAgeInSeconds.default,
      description: '-1 (forever) or 60..604800',
    }),
    bisectBatchOnFunctionError: Type.Boolean({ default: false }),
    parallelizationFactor: Type.Integer({
      minimum: EventSourceLimits.parallelizationFactor.min,
      maximum: EventSourceLimits.parallelizationFactor.max,
      default: EventSourceLimits.parallelizationFactor.default,
      description: 'Concurrent batches per stream; order is kept per partition key',
    }),
    functionResponseTypes: Type.Array(Type.Literal('ReportBatchItemFailures'), { default: [], maxItems: 1 }),
    destinationConfig: Type.Object(
      { onFailure: Type.Optional(Destination) },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);
export type EventSourceMappingSpec = Static<typeof EventSourceMappingSpecSchema>;

/** Lambda's mapping states, plus Failed when the source cannot be reached or used. */
export type EventSourceMappingState = 'Creating' | 'Enabled' | 'Disabled' | 'Failed';

export interface EventSourceMappingStatus {
  observedGeneration?: number;
  state?: EventSourceMappingState;
  stateReason?: string;
  /** The last position checkpointed: a stream entry id, a JetStream sequence, or a tick's time. */
  lastProcessedPosition?: string;
  /** Lambda's LastProcessingResult: "OK" or "PROBLEM: ...". */
  lastProcessingResult?: string;
  lastError?: string;
  /** ISO time of the last status change. */
  lastModified?: string;
}

export interface EventSourceMappingResource {
  apiVersion: `${typeof API_GROUP}/${typeof API_VERSION}`;
  kind: 'EventSourceMapping';
  metadata: { name: string; namespace?: string; generation?: number; uid?: string; [key: string]: unknown };
  spec: EventSourceMappingSpec;
  status?: EventSourceMappingStatus;
}

/** The one source a spec names (validated specs have exactly one). */
export function eventSourceKind(spec: Pick<EventSourceMappingSpec, 'source'>): EventSourceKind {
  const kinds = EventSourceKinds.filter((kind) => spec.source[kind] !== undefined);
  if (kinds.length !== 1) throw new Error(`source must name exactly one kind, has ${kinds.length}`);
  return kinds[0]!;
}

/** Paths the gateway serves itself, which an HTTP route may not take. */
export const RESERVED_HTTP_PREFIXES = [
  '/2015-03-31/',
  '/2016-08-19/',
  '/2017-10-31/',
  '/2019-09-25/',
  '/2019-09-30/',
  '/function/',
  '/healthz',
  '/metrics',
  '/hearth/',
] as const;

/**
 * Fills in defaults and checks a spec the way the CRD's schema does (for manifests read from
 * files and for the Lambda API). Returns the defaulted spec or the problems, each naming its field.
 */
export function validateEventSourceMappingSpec(
  input: unknown,
): { spec: EventSourceMappingSpec; problems: [] } | { spec?: undefined; problems: SpecProblem[] } {
  const candidate = Value.Default(EventSourceMappingSpecSchema, structuredClone(input ?? {}));
  const problems: SpecProblem[] = [...Value.Errors(EventSourceMappingSpecSchema, candidate)].map((e) => ({
    path: `spec${e.path.replaceAll('/', '.')}`,
    message: e.message,
  }));
  if (problems.length === 0) problems.push(...mappingCrossFieldProblems(candidate as EventSourceMappingSpec));
  return problems.length ? { problems } : { spec: candidate as EventSourceMappingSpec, problems: [] };
}

function mappingCrossFieldProblems(spec: EventSourceMappingSpec): SpecProblem[] {
  const problems: SpecProblem[] = [];
  const kinds = EventSourceKinds.filter((kind) => spec.source[kind] !== undefined);
  if (kinds.length !== 1) {
    problems.push({
      path: 'spec.source',
      message: `must have exactly one of ${EventSourceKinds.join(', ')} (has ${kinds.length})`,
    });
  }
  if (spec.startingPosition === 'AT_TIMESTAMP' && !spec.startingPositionTimestamp) {
    problems.push({ path: 'spec.startingPositionTimestamp', message: 'is required with AT_TIMESTAMP' });
  }
  const age = spec.maximumRecordAgeInSeconds;
  const ageLimits = EventSourceLimits.maximumRecordAgeInSeconds;
  if (age !== -1 && (age < ageLimits.min || age > ageLimits.max)) {
    problems.push({
      path: 'spec.maximumRecordAgeInSeconds',
      message: `must be -1 or between ${ageLimits.min} and ${ageLimits.max} (got ${age})`,
    });
  }
  const onFailure = spec.destinationConfig.onFailure;
  if (onFailure && Object.values(onFailure).filter((v) => v !== undefined).length !== 1) {
    problems.push({
      path: 'spec.destinationConfig.onFailure',
      message: 'must have exactly one of function, url, stream',
    });
  }
  const http = spec.source.http;
  if (http) {
    // A prefix above them (such as "/") is fine: the gateway's own paths match first.
    const reserved = RESERVED_HTTP_PREFIXES.find((prefix) => `${http.pathPrefix}/`.startsWith(prefix));
    if (reserved) {
      problems.push({
        path: 'spec.source.http.pathPrefix',
        message: `must not overlap the gateway's own path ${reserved} (got ${http.pathPrefix})`,
      });
    }
  }
  return problems;
}

/**
 * A push mapping as the gateway serves it (HTTP routes, bucket notifications), published by the
 * controller in Redis under `RedisKeys.pushMappings`, field = the mapping's name. Bucket
 * notifications arrive at `POST /hearth/v1/bucket-notifications/{name}`.
 */
export interface PushMapping {
  name: string;
  namespace: string;
  functionName: string;
  enabled: boolean;
  http?: HttpSource;
  bucket?: BucketSource;
}
