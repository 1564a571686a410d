import { createHash } from 'node:crypto';
import {
  API_GROUP,
  API_VERSION,
  functionArn,
  Limits,
  MAX_RUNTIMES_PER_INSTANCE,
  MultiConcurrentRuntimes,
  quantityToMb,
  Runtimes,
  validateFunctionSpec,
  type Destination,
  type FunctionResource,
  type FunctionRoute,
  type FunctionSpec,
  type Runtime,
} from '@hearth/api';
import { GatewayError } from '../core/errors.js';

/**
 * The decisions of the management API, free of I/O: Lambda's request shapes to a Function, a
 * Function (and what the controller reports of it) back to Lambda's FunctionConfiguration, and
 * Lambda's parameter checks with its error messages.
 */

/** Lambda-only fields, kept on the Function as annotations. */
export const Annotations = {
  description: 'lambda.hearth.dev/description',
  role: 'lambda.hearth.dev/role',
  tags: 'lambda.hearth.dev/tags',
  codeSize: 'lambda.hearth.dev/code-size',
  lastModified: 'lambda.hearth.dev/last-modified',
  /**
   * Kubernetes: `<generation>/<digest of the updatable parts>`, written by the calls that change
   * only settings Lambda applies in place (reserved concurrency, event invoke config): the spec's
   * updatable parts are those of that generation, so its rollout is this spec's too.
   */
  settledAt: 'lambda.hearth.dev/settled-at',
  /** The CapacityProviderArn of Lambda Managed Instances' config, kept to be given back. */
  capacityProvider: 'lambda.hearth.dev/capacity-provider',
  managedBy: 'app.kubernetes.io/managed-by',
} as const;
export const MANAGED_BY = 'hearth-management-api';

/** Unreserved concurrency Lambda always leaves to functions without a reservation. */
const MIN_UNRESERVED_CONCURRENCY = 100;

export interface AccountContext {
  region: string;
  accountId: string;
}

/** Function names as the registry and Kubernetes accept them: lower-case DNS labels. */
const NAME = /^[a-z0-9]([-a-z0-9]{0,62}[a-z0-9])?$/;
const ENV_KEY = /^[a-zA-Z][a-zA-Z0-9_]*$/;

function invalid(message: string): GatewayError {
  return new GatewayError('InvalidParameterValueException', message);
}

export function constraint(value: unknown, field: string, rule: string): GatewayError {
  return invalid(
    `1 validation error detected: Value '${typeof value === 'string' ? value : JSON.stringify(value)}' at '${field}' failed to satisfy constraint: ${rule}`,
  );
}

export function integerIn(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value))
    throw constraint(value, field, 'Member must be an integer');
  if (value < min) throw constraint(value, field, `Member must have value greater than or equal to ${min}`);
  if (value > max) throw constraint(value, field, `Member must have value less than or equal to ${max}`);
  return value;
}

function optionalString(body: Record<string, unknown>, field: string, maxLength: number): string | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw constraint(value, field, 'Member must be a string');
  if (value.length > maxLength)
    throw constraint(value, field, `Member must have length less than or equal to ${maxLength}`);
  return value;
}

export function objectBody(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new GatewayError('InvalidRequestContentException', 'The request body must be a JSON object.');
  return body as Record<string, unknown>;
}

function checkFunctionName(name: unknown): string {
  if (typeof name !== 'string' || name === '')
    throw constraint(name, 'FunctionName', 'Member must not be null');
  if (!NAME.test(name)) {
    throw constraint(
      name,
      'FunctionName',
      'Hearth function names must be lower-case DNS labels: a-z, 0-9 and -, at most 64 characters, starting and ending with a letter or digit',
    );
  }
  return name;
}

/** The code a CreateFunction or UpdateFunctionCode call carries. */
export type CodeInput = { zipFile: Buffer } | { imageUri: string };

/** Reads `Code` (CreateFunction) or the top level (UpdateFunctionCode): ZipFile in base64, or ImageUri. */
export function parseCode(code: unknown, field: string): CodeInput {
  const object = code && typeof code === 'object' ? (code as Record<string, unknown>) : {};
  if (object.S3Bucket !== undefined || object.S3Key !== undefined) {
    throw invalid(
      `${field}: S3Bucket/S3Key are not supported by Hearth; send the zip itself as ZipFile (aws lambda ... --zip-file fileb://code.zip).`,
    );
  }
  if (typeof object.ZipFile === 'string') {
    const zipFile = Buffer.from(object.ZipFile, 'base64');
    if (zipFile.length === 0) throw invalid(`${field}.ZipFile is empty.`);
    return { zipFile };
  }
  if (typeof object.ImageUri === 'string' && object.ImageUri !== '') return { imageUri: object.ImageUri };
  throw invalid(`${field}: one of ZipFile or ImageUri is required.`);
}

/** The configuration fields CreateFunction and UpdateFunctionConfiguration share, applied to a spec. */
function applyConfigurationFields(
  body: Record<string, unknown>,
  spec: Record<string, unknown>,
  annotations: Record<string, string>,
): void {
  if (body.Runtime !== undefined) {
    if (typeof body.Runtime !== 'string' || !(Runtimes as readonly string[]).includes(body.Runtime)) {
      throw constraint(
        body.Runtime,
        'Runtime',
        `Member must satisfy enum value set: [${Runtimes.join(', ')}]`,
      );
    }
    spec.runtime = body.Runtime;
  }
  const handler = optionalString(body, 'Handler', 128);
  if (handler !== undefined) {
    if (!/^[^\s]+$/.test(handler))
      throw constraint(handler, 'Handler', 'Member must satisfy regular expression pattern: [^\\s]+');
    spec.handler = handler;
  }
  if (body.MemorySize !== undefined)
    spec.memory = `${integerIn(body.MemorySize, 'MemorySize', Limits.memoryMb.min, Limits.memoryMb.max)}Mi`;
  if (body.Timeout !== undefined)
    spec.timeoutSeconds = integerIn(
      body.Timeout,
      'Timeout',
      Limits.timeoutSeconds.min,
      Limits.timeoutSeconds.max,
    );
  if (body.EphemeralStorage !== undefined) {
    const size = (body.EphemeralStorage as { Size?: unknown } | null)?.Size;
    spec.ephemeralStorage = `${integerIn(size, 'EphemeralStorage.Size', Limits.ephemeralStorageMb.min, Limits.ephemeralStorageMb.max)}Mi`;
  }
  if (body.Environment !== undefined) {
    const variables = (body.Environment as { Variables?: unknown } | null)?.Variables ?? {};
    if (typeof variables !== 'object' || variables === null || Array.isArray(variables))
      throw invalid('Environment.Variables must be a map of strings.');
    const env = Object.entries(variables as Record<string, unknown>).map(([name, value]) => {
      if (!ENV_KEY.test(name))
        throw constraint(
          name,
          'Environment.Variables',
          'Member must have keys starting with a letter and made of letters, digits and _',
        );
      if (typeof value !== 'string')
        throw constraint(value, `Environment.Variables.${name}`, 'Member must be a string');
      return { name, value };
    });
    const bytes = env.reduce((n, e) => n + Buffer.byteLength(e.name) + Buffer.byteLength(e.value), 0);
    if (bytes > Limits.envVarsBytes) {
      throw invalid(
        `Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: ${bytes} bytes of Environment.Variables, limit ${Limits.envVarsBytes}.`,
      );
    }
    if (env.length > 0) spec.env = env;
    else delete spec.env;
  }
  if (body.CapacityProviderConfig !== undefined)
    applyCapacityProviderConfig(body.CapacityProviderConfig, spec, annotations);
  const description = optionalString(body, 'Description', 256);
  if (description !== undefined) annotations[Annotations.description] = description;
  const role = optionalString(body, 'Role', 2048);
  if (role !== undefined) annotations[Annotations.role] = role;
}

const MANAGED_INSTANCES_FIELD = 'CapacityProviderConfig.LambdaManagedInstancesCapacityProviderConfig';
/**
 * Lambda Managed Instances' default calls per execution environment for one vCPU: 64 for Node.js,
 * 16 for Python, the runtime that takes one call per process.
 */
const DEFAULT_ENVIRONMENT_CONCURRENCY = { processPerCall: 16, oneProcess: 64 } as const;

/**
 * Lambda Managed Instances' CapacityProviderConfig. Hearth has no capacity providers (its pools run
 * on the cluster's nodes), so the ARN is kept only to be given back. An instance is one execution
 * environment taking PerExecutionEnvironmentMaxConcurrency calls at once: in one runtime process
 * (`concurrency.perRuntime`), or, for a runtime that takes one call at a time (Python, as on
 * Lambda), in a process per call.
 */
function applyCapacityProviderConfig(
  value: unknown,
  spec: Record<string, unknown>,
  annotations: Record<string, string>,
): void {
  const config = (value as { LambdaManagedInstancesCapacityProviderConfig?: unknown } | null)
    ?.LambdaManagedInstancesCapacityProviderConfig as Record<string, unknown> | undefined;
  if (!config || typeof config !== 'object') throw invalid(`${MANAGED_INSTANCES_FIELD} is required.`);
  const arn = config.CapacityProviderArn;
  if (typeof arn !== 'string' || arn === '')
    throw invalid(`${MANAGED_INSTANCES_FIELD}.CapacityProviderArn is required.`);
  const processPerCall = !MultiConcurrentRuntimes.includes(spec.runtime as Runtime);
  const calls =
    config.PerExecutionEnvironmentMaxConcurrency === undefined
      ? DEFAULT_ENVIRONMENT_CONCURRENCY[processPerCall ? 'processPerCall' : 'oneProcess']
      : integerIn(
          config.PerExecutionEnvironmentMaxConcurrency,
          `${MANAGED_INSTANCES_FIELD}.PerExecutionEnvironmentMaxConcurrency`,
          1,
          processPerCall ? MAX_RUNTIMES_PER_INSTANCE : 1000,
        );
  const concurrency = (spec.concurrency ?? {}) as Record<string, unknown>;
  spec.concurrency = { ...concurrency, perInstance: calls, perRuntime: processPerCall ? 1 : calls };
  annotations[Annotations.capacityProvider] = arn;
}

/** A list of strings Lambda's ImageConfig carries (EntryPoint, Command); empty means the default. */
function stringList(value: unknown, field: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string'))
    throw constraint(value, field, 'Member must be a list of strings');
  if (value.length > 64) throw constraint(value, field, 'Member must have length less than or equal to 64');
  const long = (value as string[]).find((item) => item.length > 1024);
  if (long !== undefined) throw constraint(long, field, 'Member must have length less than or equal to 1024');
  return value.length > 0 ? (value as string[]) : undefined;
}

/**
 * Lambda's ImageConfig onto spec.imageConfig, for image functions only. The whole ImageConfig is
 * replaced, as on Lambda; an empty field (or ImageConfig {}) goes back to the base-image default.
 */
function applyImageConfig(
  body: Record<string, unknown>,
  spec: Record<string, unknown>,
  isImage: boolean,
): void {
  if (body.ImageConfig === undefined || body.ImageConfig === null) return;
  if (!isImage)
    throw invalid(
      'ImageConfig is only for functions whose PackageType is Image; this one is a Zip function.',
    );
  const given = body.ImageConfig;
  if (typeof given !== 'object' || Array.isArray(given))
    throw constraint(given, 'ImageConfig', 'Member must be an object');
  const { EntryPoint, Command, WorkingDirectory } = given as Record<string, unknown>;
  const entryPoint = stringList(EntryPoint, 'ImageConfig.EntryPoint');
  if (entryPoint?.includes(''))
    throw constraint(EntryPoint, 'ImageConfig.EntryPoint', 'Member must not hold an empty string');
  const command = stringList(Command, 'ImageConfig.Command');
  if (WorkingDirectory !== undefined && WorkingDirectory !== null && typeof WorkingDirectory !== 'string')
    throw constraint(WorkingDirectory, 'ImageConfig.WorkingDirectory', 'Member must be a string');
  const workingDirectory = WorkingDirectory || undefined;
  if (workingDirectory && (!workingDirectory.startsWith('/') || workingDirectory.length > 1000)) {
    throw constraint(
      workingDirectory,
      'ImageConfig.WorkingDirectory',
      'Member must be an absolute path of at most 1000 characters',
    );
  }
  const imageConfig = {
    ...(entryPoint ? { entryPoint } : {}),
    ...(command ? { command } : {}),
    ...(workingDirectory ? { workingDirectory } : {}),
  };
  if (Object.keys(imageConfig).length > 0) spec.imageConfig = imageConfig;
  else delete spec.imageConfig;
}

/** Validates a spec the way the controller will, so that nothing written is later ignored. */
function finishSpec(spec: Record<string, unknown>): FunctionSpec {
  const result = validateFunctionSpec(spec);
  if (!result.spec) throw invalid(result.problems.map((p) => `${p.path} ${p.message}`).join('; '));
  return result.spec;
}

export interface CreateFunctionInput {
  name: string;
  code: CodeInput;
  /** Builds the Function once the code has a place (the stored zip's archive reference). */
  build(code: FunctionSpec['code'], codeSize: number, now: Date): FunctionResource;
}

/** Reads a CreateFunction body; everything but storing the code is decided here. */
export function parseCreateFunction(raw: unknown): CreateFunctionInput {
  const body = objectBody(raw);
  const name = checkFunctionName(body.FunctionName);
  const packageType = body.PackageType ?? 'Zip';
  if (packageType !== 'Zip' && packageType !== 'Image')
    throw constraint(packageType, 'PackageType', 'Member must satisfy enum value set: [Zip, Image]');
  const code = parseCode(body.Code, 'Code');
  if (packageType === 'Zip' && !('zipFile' in code))
    throw invalid('Code.ZipFile is required when PackageType is Zip.');
  if (packageType === 'Image' && !('imageUri' in code))
    throw invalid('Code.ImageUri is required when PackageType is Image.');
  if (packageType === 'Zip' && body.Runtime === undefined)
    throw invalid('Runtime is required when PackageType is Zip.');
  const spec: Record<string, unknown> = { runtime: packageType === 'Image' ? 'provided.al2023' : undefined };
  const annotations: Record<string, string> = { [Annotations.managedBy]: MANAGED_BY };
  applyConfigurationFields(body, spec, annotations);
  applyImageConfig(body, spec, packageType === 'Image');
  if (body.Tags !== undefined) annotations[Annotations.tags] = JSON.stringify(parseTags(body.Tags));
  // Checked now, with a placeholder for a zip, so a bad request never stores one.
  finishSpec({ ...spec, code: 'imageUri' in code ? { image: code.imageUri } : { inline: { files: {} } } });
  return {
    name,
    code,
    build(specCode, codeSize, now) {
      return {
        apiVersion: `${API_GROUP}/${API_VERSION}`,
        kind: 'Function',
        metadata: {
          name,
          annotations: {
            ...annotations,
            [Annotations.codeSize]: String(codeSize),
            [Annotations.lastModified]: lambdaTime(now),
          },
        },
        spec: finishSpec({ ...spec, code: specCode }),
      };
    },
  };
}

function parseTags(tags: unknown): Record<string, string> {
  if (!tags || typeof tags !== 'object' || Array.isArray(tags))
    throw invalid('Tags must be a map of strings.');
  for (const [key, value] of Object.entries(tags))
    if (typeof value !== 'string') throw constraint(value, `Tags.${key}`, 'Member must be a string');
  return tags as Record<string, string>;
}

function annotationsOf(resource: FunctionResource): Record<string, string> {
  return { ...((resource.metadata.annotations as Record<string, string> | undefined) ?? {}) };
}

/** An update (code or configuration): LastUpdateStatus is InProgress until the controller serves it. */
function withChanges(
  resource: FunctionResource,
  spec: Record<string, unknown>,
  annotations: Record<string, string>,
  now: Date,
): FunctionResource {
  // An update may change the updatable parts and a later one change them back: only a settings
  // change can say which generation's rollout still stands.
  delete annotations[Annotations.settledAt];
  return changed(resource, spec, annotations, now);
}

/**
 * A change of settings Lambda applies in place (reserved concurrency, event invoke config): no
 * update, so LastUpdateStatus stays what it was. On Kubernetes the Function's generation moves on
 * anyway; the annotation says which generation the controller must have seen for it to be current.
 */
function withSettingsChange(resource: FunctionResource, spec: FunctionSpec, now: Date): FunctionResource {
  const annotations = annotationsOf(resource);
  const generation = resource.metadata.generation;
  if (generation !== undefined) {
    const digest = updateDigest(spec);
    const settled = parseSettledAt(annotations[Annotations.settledAt]);
    const since = settled?.digest === digest ? Math.min(settled.generation, generation) : generation;
    annotations[Annotations.settledAt] = `${since}/${digest}`;
  }
  return changed(resource, spec, annotations, now);
}

/** The settled-at annotation's parts; undefined when absent or not ours. */
export function parseSettledAt(
  value: string | undefined,
): { generation: number; digest: string } | undefined {
  const match = /^([0-9]+)\/([0-9a-f]+)$/.exec(value ?? '');
  return match ? { generation: Number(match[1]), digest: match[2]! } : undefined;
}

function changed(
  resource: FunctionResource,
  spec: Record<string, unknown>,
  annotations: Record<string, string>,
  now: Date,
): FunctionResource {
  return {
    ...resource,
    metadata: {
      ...resource.metadata,
      annotations: { ...annotations, [Annotations.lastModified]: lambdaTime(now) },
    },
    spec: finishSpec(spec),
  };
}

/** UpdateFunctionConfiguration: only the fields present change. */
export function applyUpdateConfiguration(
  resource: FunctionResource,
  raw: unknown,
  now: Date,
): FunctionResource {
  const body = objectBody(raw);
  const spec = structuredClone(resource.spec) as Record<string, unknown>;
  const annotations = annotationsOf(resource);
  applyConfigurationFields(body, spec, annotations);
  applyImageConfig(body, spec, resource.spec.code.image !== undefined);
  return withChanges(resource, spec, annotations, now);
}

/** UpdateFunctionCode, once the new code has a place. */
export function applyNewCode(
  resource: FunctionResource,
  code: FunctionSpec['code'],
  codeSize: number,
  now: Date,
): FunctionResource {
  const annotations = annotationsOf(resource);
  annotations[Annotations.codeSize] = String(codeSize);
  return withChanges(resource, { ...structuredClone(resource.spec), code }, annotations, now);
}

/**
 * PutFunctionConcurrency: the reservation, as long as all reservations together leave at least
 * 100 of the account's concurrency to the other functions.
 */
export function applyReservedConcurrency(
  resource: FunctionResource,
  raw: unknown,
  reservedByOthers: number,
  accountConcurrency: number,
  now: Date,
): FunctionResource {
  const value = objectBody(raw).ReservedConcurrentExecutions;
  const reserved = integerIn(value, 'ReservedConcurrentExecutions', 0, accountConcurrency);
  if (accountConcurrency - reservedByOthers - reserved < MIN_UNRESERVED_CONCURRENCY) {
    throw invalid(
      `Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [${MIN_UNRESERVED_CONCURRENCY}]: ` +
        `the account allows ${accountConcurrency}, other functions reserve ${reservedByOthers}, so at most ${Math.max(0, accountConcurrency - reservedByOthers - MIN_UNRESERVED_CONCURRENCY)} can be reserved.`,
    );
  }
  const spec = structuredClone(resource.spec);
  spec.concurrency = { ...spec.concurrency, reserved };
  return withSettingsChange(resource, spec, now);
}

export function removeReservedConcurrency(resource: FunctionResource, now: Date): FunctionResource {
  const spec = structuredClone(resource.spec);
  const { reserved: _reserved, ...rest } = spec.concurrency;
  spec.concurrency = rest;
  return withSettingsChange(resource, spec, now);
}

/** A destination ARN (or URL) to where Hearth sends it; see docs/management-api.md. */
export function parseDestination(value: unknown, field: string): Destination {
  if (typeof value !== 'string' || value === '')
    throw constraint(value, field, 'Member must be a non-empty string');
  if (/^https?:\/\//.test(value)) return { url: value };
  const lambda = /^arn:aws[a-zA-Z-]*:lambda:[^:]*:[^:]*:function:([^:]+)$/.exec(value);
  if (lambda) return { function: lambda[1]! };
  const queue = /^arn:aws[a-zA-Z-]*:(sqs|sns|events):[^:]*:[^:]*:(?:event-bus\/)?([^:/]+)$/.exec(value);
  if (queue) return { stream: queue[2]! };
  if (NAME.test(value)) return { function: value };
  throw constraint(
    value,
    field,
    'Member must be a Lambda function ARN, an SQS/SNS/EventBridge ARN (delivered to a Redis stream of that name) or an http(s) URL',
  );
}

export function destinationArn(destination: Destination, context: AccountContext): string {
  if (destination.function) return functionArn(destination.function, context.region, context.accountId);
  if (destination.url) return destination.url;
  return `arn:aws:sqs:${context.region}:${context.accountId}:${destination.stream}`;
}

/** Put (replace) or Update (merge) FunctionEventInvokeConfig. */
export function applyEventInvokeConfig(
  resource: FunctionResource,
  raw: unknown,
  merge: boolean,
  now: Date,
): FunctionResource {
  const body = objectBody(raw);
  const previous = resource.spec.async;
  const next: FunctionSpec['async'] = merge
    ? { ...previous }
    : { maxRetryAttempts: 2, maxEventAgeSeconds: 21_600 };
  if (body.MaximumRetryAttempts !== undefined)
    next.maxRetryAttempts = integerIn(body.MaximumRetryAttempts, 'MaximumRetryAttempts', 0, 2);
  if (body.MaximumEventAgeInSeconds !== undefined)
    next.maxEventAgeSeconds = integerIn(
      body.MaximumEventAgeInSeconds,
      'MaximumEventAgeInSeconds',
      60,
      21_600,
    );
  const destinations = (body.DestinationConfig ?? {}) as Record<
    string,
    { Destination?: unknown } | undefined
  >;
  for (const [field, key] of [
    ['OnSuccess', 'onSuccess'],
    ['OnFailure', 'onFailure'],
  ] as const) {
    const given = destinations[field];
    if (given === undefined) continue;
    if (given.Destination === undefined || given.Destination === null || given.Destination === '')
      delete next[key];
    else next[key] = parseDestination(given.Destination, `DestinationConfig.${field}.Destination`);
  }
  const spec = structuredClone(resource.spec);
  spec.async = next;
  return withSettingsChange(resource, spec, now);
}

export function resetEventInvokeConfig(resource: FunctionResource, now: Date): FunctionResource {
  const spec = structuredClone(resource.spec);
  spec.async = { maxRetryAttempts: 2, maxEventAgeSeconds: 21_600 };
  return withSettingsChange(resource, spec, now);
}

/** Whether the function has an event invoke config other than Lambda's defaults. */
export function hasEventInvokeConfig(spec: FunctionSpec): boolean {
  return (
    spec.async.maxRetryAttempts !== 2 ||
    spec.async.maxEventAgeSeconds !== 21_600 ||
    !!spec.async.onSuccess ||
    !!spec.async.onFailure
  );
}

export function toEventInvokeConfig(resource: FunctionResource, context: AccountContext) {
  const async = resource.spec.async;
  const destination = (d: Destination | undefined) => (d ? { Destination: destinationArn(d, context) } : {});
  return {
    FunctionArn: `${functionArn(resource.metadata.name, context.region, context.accountId)}:$LATEST`,
    MaximumRetryAttempts: async.maxRetryAttempts,
    MaximumEventAgeInSeconds: async.maxEventAgeSeconds,
    LastModified: Date.parse(annotationsOf(resource)[Annotations.lastModified] ?? '') / 1000 || 0,
    DestinationConfig: { OnSuccess: destination(async.onSuccess), OnFailure: destination(async.onFailure) },
  };
}

/** Lambda's LastModified: `2024-01-02T03:04:05.678+0000`. */
function lambdaTime(date: Date): string {
  return date.toISOString().replace('Z', '+0000');
}

/** JSON with sorted keys, so two equal specs compare equal whatever their key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The parts of a spec whose change is an update (LastUpdateStatus InProgress until served): all
 * but the reserved concurrency and the event invoke config, which Lambda changes in place.
 */
function updatableParts(spec: FunctionSpec) {
  const { async: _async, concurrency, ...rest } = spec;
  const { reserved: _reserved, perRuntime, ...perInstance } = concurrency;
  // perRuntime at its default is left out: digests written before it existed stay valid.
  return { ...rest, concurrency: perRuntime > 1 ? { ...perInstance, perRuntime } : perInstance };
}

/** A short digest of the updatable parts, for the settled-at annotation. */
export function updateDigest(spec: FunctionSpec): string {
  return createHash('sha256')
    .update(canonical(updatableParts(spec)))
    .digest('hex')
    .slice(0, 16);
}

/**
 * What the controller reports serving: the registry's route in process mode, the Function's
 * status on Kubernetes. `spec` is the spec it serves; absent when that is known only to be an
 * older one than asked for.
 */
export interface ServedState {
  state: FunctionRoute['state'];
  stateReason?: string;
  spec?: FunctionSpec;
  lastModified?: string;
}

export interface ObservedState {
  State: 'Pending' | 'Active' | 'Inactive' | 'Failed';
  StateReason?: string;
  StateReasonCode?: string;
  LastUpdateStatus: 'InProgress' | 'Successful' | 'Failed';
  LastUpdateStatusReason?: string;
  LastUpdateStatusReasonCode?: string;
}

/**
 * Lambda's State and LastUpdateStatus from what was asked (the Function) and what the controller
 * serves (its route): an update is Successful once the route carries the spec that was asked for
 * (its updatable parts: a new reservation or event invoke config is no update), Failed when the controller gave up on that spec, InProgress until then. The function stays
 * Active meanwhile if it already was, as on Lambda.
 */
export function observedState(spec: FunctionSpec, route: ServedState | undefined): ObservedState {
  if (!route) {
    return {
      State: 'Pending',
      StateReason: 'The function is being created.',
      StateReasonCode: 'Creating',
      LastUpdateStatus: 'InProgress',
    };
  }
  const current =
    route.spec !== undefined && canonical(updatableParts(route.spec)) === canonical(updatableParts(spec));
  if (route.state === 'Failed' && current) {
    const reason = route.stateReason ?? 'The function could not be started.';
    return {
      State: 'Failed',
      StateReason: reason,
      StateReasonCode: 'InternalError',
      LastUpdateStatus: 'Failed',
      LastUpdateStatusReason: reason,
      LastUpdateStatusReasonCode: 'InternalError',
    };
  }
  if (current)
    return { State: route.state === 'Failed' ? 'Failed' : route.state, LastUpdateStatus: 'Successful' };
  if (route.state === 'Active')
    return {
      State: 'Active',
      LastUpdateStatus: 'InProgress',
      LastUpdateStatusReason: 'The function is being updated.',
    };
  return {
    State: 'Pending',
    StateReason: 'The function is being created.',
    StateReasonCode: 'Creating',
    LastUpdateStatus: 'InProgress',
  };
}

/**
 * Lambda refuses UpdateFunctionCode and UpdateFunctionConfiguration while the function is still
 * being created or updated (LastUpdateStatus InProgress), in its words; undefined when the update
 * may go ahead. Callers check the request's own parameters first, as Lambda does.
 */
export function updateConflict(
  resource: FunctionResource,
  route: ServedState | undefined,
  context: AccountContext,
): GatewayError | undefined {
  const observed = observedState(resource.spec, route);
  if (observed.LastUpdateStatus !== 'InProgress') return undefined;
  return new GatewayError(
    'ResourceConflictException',
    observed.State === 'Pending'
      ? 'The operation cannot be performed at this time. The function is currently in the following state: Pending'
      : `The operation cannot be performed at this time. An update is in progress for resource: ${functionArn(resource.metadata.name, context.region, context.accountId)}`,
  );
}

/** CodeSha256 and CodeSize of any kind of code: the zip's for archives, a digest of the files for inline code. */
function codeIdentity(resource: FunctionResource): { sha256Base64: string; size: number } {
  const code = resource.spec.code;
  const size = Number(annotationsOf(resource)[Annotations.codeSize] ?? 0);
  if (code.archive) return { sha256Base64: Buffer.from(code.archive.sha256, 'hex').toString('base64'), size };
  const digest = createHash('sha256').update(canonical(code)).digest('base64');
  const inlineSize = Object.values(code.inline?.files ?? {}).reduce(
    (n, text) => n + Buffer.byteLength(text),
    0,
  );
  return { sha256Base64: digest, size: code.inline ? inlineSize : size };
}

/** RevisionId: a UUID-shaped digest of the whole Function, changing with every change. */
function revisionId(resource: FunctionResource): string {
  const hex = createHash('sha256')
    .update(canonical({ spec: resource.spec, annotations: resource.metadata.annotations ?? {} }))
    .digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

export function toFunctionConfiguration(
  resource: FunctionResource,
  route: ServedState | undefined,
  context: AccountContext,
) {
  const { spec } = resource;
  const annotations = annotationsOf(resource);
  const code = codeIdentity(resource);
  const image = spec.code.image !== undefined;
  const variables = Object.fromEntries(
    (spec.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]),
  );
  return {
    FunctionName: resource.metadata.name,
    FunctionArn: functionArn(resource.metadata.name, context.region, context.accountId),
    ...(image ? {} : { Runtime: spec.runtime, Handler: spec.handler }),
    Role: annotations[Annotations.role] ?? `arn:aws:iam::${context.accountId}:role/hearth-function`,
    CodeSize: code.size,
    CodeSha256: code.sha256Base64,
    Description: annotations[Annotations.description] ?? '',
    Timeout: spec.timeoutSeconds,
    MemorySize: quantityToMb(spec.memory),
    EphemeralStorage: { Size: quantityToMb(spec.ephemeralStorage) },
    LastModified: annotations[Annotations.lastModified] ?? lambdaTime(new Date(route?.lastModified ?? 0)),
    Version: '$LATEST',
    RevisionId: revisionId(resource),
    PackageType: image ? 'Image' : 'Zip',
    Architectures: ['x86_64'],
    ...(Object.keys(variables).length > 0 ? { Environment: { Variables: variables } } : {}),
    ...(spec.imageConfig
      ? { ImageConfigResponse: { ImageConfig: lambdaImageConfig(spec.imageConfig) } }
      : {}),
    TracingConfig: { Mode: 'PassThrough' },
    ...capacityProviderConfig(spec, annotations[Annotations.capacityProvider]),
    ...observedState(spec, route),
  };
}

function capacityProviderConfig(spec: FunctionSpec, arn: string | undefined) {
  if (arn === undefined) return {};
  return {
    CapacityProviderConfig: {
      LambdaManagedInstancesCapacityProviderConfig: {
        CapacityProviderArn: arn,
        PerExecutionEnvironmentMaxConcurrency: spec.concurrency.perInstance,
      },
    },
  };
}

function lambdaImageConfig(config: NonNullable<FunctionSpec['imageConfig']>) {
  return {
    ...(config.entryPoint ? { EntryPoint: config.entryPoint } : {}),
    ...(config.command ? { Command: config.command } : {}),
    ...(config.workingDirectory ? { WorkingDirectory: config.workingDirectory } : {}),
  };
}

export function tagsOf(resource: FunctionResource): Record<string, string> {
  const raw = annotationsOf(resource)[Annotations.tags];
  if (!raw) return {};
  try {
    return JSON.parse(raw) as Record<string, string>;
  } catch {
    return {};
  }
}

/** ListFunctions' paging: functions sorted by name, Marker the last name of the previous page. */
export function pageOf<T extends { name: string }>(
  items: T[],
  marker: unknown,
  maxItems: unknown,
): { page: T[]; nextMarker?: string } {
  const limit =
    maxItems === undefined || maxItems === '' ? 50 : integerIn(Number(maxItems), 'MaxItems', 1, 10_000);
  const after =
    typeof marker === 'string' && marker !== ''
      ? Buffer.from(marker, 'base64url').toString('utf8')
      : undefined;
  const sorted = [...items].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const rest = after === undefined ? sorted : sorted.filter((item) => item.name > after);
  const page = rest.slice(0, limit);
  return rest.length > limit
    ? { page, nextMarker: Buffer.from(page.at(-1)!.name).toString('base64url') }
    : { page };
}
